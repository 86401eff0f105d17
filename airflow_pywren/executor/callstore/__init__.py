"""Where calls record their start, final status and output: one layout per storage backend.

``call_store_for(storage)`` is the one way in: the function-side handler writes through
it, and monitors, the reducer, lost-call detection and the UI read through it.
``StorageBackend.call_layout`` names the layout: ``objects`` (:mod:`.objects`, object
stores such as COS) or ``segments`` (:mod:`.segments`, localhost files).
"""

from __future__ import annotations

import weakref

from airflow_pywren.executor.callstore.base import CallStore, CallUpdates, JobCalls
from airflow_pywren.executor.storage.base import StorageBackend

_LAYOUTS = {
    "objects": "airflow_pywren.executor.callstore.objects:ObjectCallStore",
    "segments": "airflow_pywren.executor.callstore.segments:SegmentCallStore",
}
_stores: weakref.WeakKeyDictionary[StorageBackend, CallStore] = weakref.WeakKeyDictionary()


def call_store_for(storage: StorageBackend) -> CallStore:
    """The call store of ``storage`` (one per storage object, so its caches are shared)."""
    store = _stores.get(storage)
    if store is None:
        import importlib

        module_name, _, class_name = _LAYOUTS[storage.call_layout].partition(":")
        store = _stores[storage] = getattr(importlib.import_module(module_name), class_name)(storage)
    return store


__all__ = ["CallStore", "CallUpdates", "JobCalls", "call_store_for"]
