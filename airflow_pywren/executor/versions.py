"""Client and runtime versions: pickles travel only between compatible Python and cloudpickle versions.

The client sends :func:`client_versions` with every call of a job (``versions`` in the
activation payload); the function side calls :func:`check_client_versions` before it
unpickles anything of the job. A pickled function loads only on the same Python minor
version (its bytecode) and, to be safe, the same cloudpickle major.minor version; a
runtime image built for another client fails each call with :class:`RuntimeVersionError`
saying how to rebuild it.
"""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle

from airflow_pywren.executor.errors import PyWrenError


class RuntimeVersionError(PyWrenError):
    """The runtime cannot load the client's pickles: its Python or cloudpickle version differs."""


def python_version() -> str:
    """This interpreter's ``major.minor``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def client_versions() -> dict[str, str]:
    """The versions that decide whether another process can load this process's pickles."""
    return {"python": python_version(), "cloudpickle": cloudpickle.__version__}


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_client_versions(client: dict[str, Any] | None, runtime: dict[str, str] | None = None) -> None:
    """Raise RuntimeVersionError unless ``client``'s versions match this runtime's (``runtime``, default: ours).

    A payload without versions (a client older than this check) is let through.
    """
    if not client:
        return
    runtime = runtime or client_versions()
    client_python, client_pickle = str(client.get("python")), str(client.get("cloudpickle"))
    if client_python == runtime["python"] and _major_minor(client_pickle) == _major_minor(runtime["cloudpickle"]):
        return
    raise RuntimeVersionError(
        f"the client runs Python {client_python} with cloudpickle {client_pickle}, but this runtime has Python "
        f"{runtime['python']} with cloudpickle {runtime['cloudpickle']}; functions pickled on one cannot be loaded "
        "on the other (they need the same Python minor version and the same cloudpickle major.minor). "
        "Rebuild the runtime image from the client's environment (pywren runtime build --tag <image> --push "
        "uses its Python and cloudpickle versions) and redeploy it (pywren runtime deploy --runtime <image>), "
        f"or run the client on Python {runtime['python']} with cloudpickle "
        f"{'.'.join(_major_minor(runtime['cloudpickle']))}.x"
    )
