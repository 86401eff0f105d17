"""The runtime image of IBM Cloud Functions / OpenWhisk actions: its Dockerfile ships inside the package.

``pywren runtime build`` copies this installation's ``airflow_pywren`` into a temporary
build context, so it works from a pip install as well as from a source checkout, and
builds the image for the client's Python minor version and cloudpickle version (see
:mod:`airflow_pywren.executor.versions`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""The installed ``airflow_pywren`` package, copied into the image."""
DOCKERFILE = Path(__file__).with_name("Dockerfile")
DOCKERFILE_IN_CONTEXT = Path("airflow_pywren") / "runtime" / "Dockerfile"
"""Where the Dockerfile is inside a build context (a source checkout, or one made by :func:`make_build_context`)."""


def make_build_context(target: Path) -> Path:
    """Copy the installed package to ``target/airflow_pywren`` (what the Dockerfile copies into the image)."""
    shutil.copytree(PACKAGE_DIR, target / "airflow_pywren", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def build_command(context: Path, tag: str, python_version: str, cloudpickle_version: str) -> list[str]:
    """The ``docker build`` command of the runtime image ``tag`` from ``context``."""
    return [
        "docker",
        "build",
        "--build-arg",
        f"PYTHON_VERSION={python_version}",
        "--build-arg",
        f"CLOUDPICKLE_VERSION={cloudpickle_version}",
        "-f",
        str(context / DOCKERFILE_IN_CONTEXT),
        "-t",
        tag,
        str(context),
    ]
