"""The client side of a map over data: from ``iterdata`` to one serialized item per chunk."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_pywren.executor.calls import CallData
from airflow_pywren.executor.data.calls import DATA_PARAMETERS, check_data_function, legacy_arguments, parameters
from airflow_pywren.executor.data.discovery import discover
from airflow_pywren.executor.data.locations import FILE, HTTP, Location, location_text, parse_location
from airflow_pywren.executor.data.partitioner import DataObject, DataPart, check_chunking, plan_parts
from airflow_pywren.executor.errors import DataSourceError, PyWrenSubmitError
from airflow_pywren.executor.storage.base import StorageBackend

logger = logging.getLogger(__name__)

MAX_INPUTS_RECORDED = 20


@dataclass
class DataPlan:
    """The chunks of a map over data, in call order, and where they came from."""

    locations: list[Location]
    objects: list[DataObject]
    parts: list[DataPart]
    storage: StorageBackend
    extra_args: dict[str, Any] = field(default_factory=dict)

    def items(self, func: Callable) -> list[CallData]:
        """One call's data per chunk: keyword arguments (``bucket``/``key``/``url`` when declared) and the part."""
        params = parameters(func) or {}
        return [
            CallData(
                kwargs={**legacy_arguments(part, params), **self.extra_args, **part.extra}, context={"data_part": part}
            )
            for part in self.parts
        ]

    def calls_per_object(self) -> list[list[int]]:
        """Call indexes of each object's chunks, in object order."""
        groups: list[list[int]] = [[] for _ in self.objects]
        for index, part in enumerate(self.parts):
            groups[part.object_index].append(index)
        return groups

    def summary(self) -> dict[str, Any]:
        """What a job reference records about its inputs: small whatever the number of objects."""
        datasets = _at_most(MAX_INPUTS_RECORDED, [dataset_name(loc, self.storage) for loc in self.locations])
        return {
            "locations": [loc.text for loc in self.locations[:MAX_INPUTS_RECORDED]],
            "locations_total": len(self.locations),
            "datasets": datasets[:MAX_INPUTS_RECORDED],
            "objects": len(self.objects),
            "bytes": sum(max(obj.size, 0) for obj in self.objects),
            "chunks": len(self.parts),
        }


def _unique(datasets: list[dict[str, str]]) -> list[dict[str, str]]:
    return list({tuple(d.items()): d for d in datasets}.values())


def _at_most(limit: int, datasets: list[dict[str, str]]) -> list[dict[str, str]]:
    """The datasets, or their directories, or their namespaces (buckets): the first of these with ``limit`` or fewer."""
    datasets = _unique(datasets)
    if len(datasets) <= limit:
        return datasets
    directories = _unique([{**d, "name": d["name"].rstrip("/").rpartition("/")[0] + "/"} for d in datasets])
    if len(directories) <= limit:
        return directories
    by_namespace: dict[str, list[str]] = {}
    for d in directories:
        by_namespace.setdefault(d["namespace"], []).append(d["name"])
    return [
        {"namespace": namespace, "name": (os.path.commonpath(names) if namespace == "file" else "").rstrip("/") + "/"}
        for namespace, names in by_namespace.items()
    ][:limit]


def dataset_name(location: Location, storage: StorageBackend) -> dict[str, str]:
    """A location as an OpenLineage dataset: ``s3://bucket`` + key on COS, ``file`` + path locally."""
    if location.kind == HTTP:
        scheme, _, rest = location.url.partition("://")
        host, _, path = rest.partition("/")
        return {"namespace": f"{scheme}://{host}", "name": "/" + path}
    if location.kind == FILE:
        return {"namespace": "file", "name": location.key}
    data_root = getattr(storage, "data_root", None)
    if storage.is_local and data_root is not None:
        return {"namespace": "file", "name": f"{data_root}/{location.bucket}/{location.key}"}
    return {"namespace": f"s3://{location.bucket}", "name": location.key or "/"}


def split_item(item: Any, index: int) -> tuple[Any, dict[str, Any]]:
    """An iterdata item's location and the other keyword arguments it carries."""
    if isinstance(item, dict):
        named = [name for name in DATA_PARAMETERS if name in item and name != "data_stream"]
        if len(named) != 1:
            raise DataSourceError(
                f"iterdata item {index} ({item!r:.80}) must name its data under exactly one of 'obj', 'url', 'key' "
                "or 'bucket'"
            )
        extra = {k: v for k, v in item.items() if k != named[0]}
        return item[named[0]], extra
    return item, {}


def plan_data(
    func: Callable,
    iterdata: Any,
    storage: StorageBackend,
    chunk_size: int | None = None,
    chunk_n: int | None = None,
    local_compute: bool = True,
    max_workers: int = 16,
    extra_args: dict[str, Any] | None = None,
) -> DataPlan:
    """Parse, discover and split the data ``iterdata`` names; raise a clear error for anything wrong."""
    check_chunking(chunk_size, chunk_n)
    if location_text(iterdata) is not None:
        items: list[Any] = [iterdata]
    elif isinstance(iterdata, (list, tuple)):
        items = list(iterdata)
    else:
        try:
            items = list(iterdata)
        except TypeError:
            raise PyWrenSubmitError(
                f"iterdata of a map over data must be a location ('cos://bucket/prefix/') or a list of them, "
                f"got {type(iterdata).__name__}"
            ) from None
    if not items:
        raise DataSourceError("iterdata is empty: give a bucket, a prefix, keys or URLs")
    pairs = [split_item(item, index) for index, item in enumerate(items)]
    extra_names = {name for _, extra in pairs for name in extra} | set(extra_args or {})
    check_data_function(func, extra_names)
    locations = [parse_location(value) for value, _ in pairs]
    if not local_compute:
        local = [loc for loc in locations if loc.kind == FILE]
        if local:
            raise DataSourceError(
                f"{local[0].text!r} is a file on this machine, which remote activations cannot read; "
                "put it in object storage and pass 'cos://bucket/key'"
            )
    found = discover(locations, storage, max_workers)
    objects: list[DataObject] = []
    extras: list[dict[str, Any]] = []
    for (_, extra), location_objects in zip(pairs, found):
        objects.extend(location_objects)
        extras.extend(extra for _ in location_objects)
    parts = plan_parts(objects, chunk_size, chunk_n, extras)
    logger.info(
        "data of the map: %d location(s), %d object(s), %d bytes, %d chunk(s)",
        len(locations),
        len(objects),
        sum(max(o.size, 0) for o in objects),
        len(parts),
    )
    return DataPlan(locations, objects, parts, storage, dict(extra_args or {}))
