"""The wheel: what it ships and declares, and ``pywren runtime build`` from a plain install of it."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from airflow_pywren.compat import MIN_AIRFLOW_VERSION
from airflow_pywren.provider_info import get_provider_info
from airflow_pywren.version import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout, the way a release would be."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=540,
    )
    (path,) = out.glob("airflow_pywren-*.whl")
    return path


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        return email.message_from_bytes(archive.read(f"airflow_pywren-{__version__}.dist-info/METADATA"))


def test_wheel_ships_the_package_its_license_types_marker_and_runtime_dockerfile(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    dist_info = f"airflow_pywren-{__version__}.dist-info"
    assert {
        "airflow_pywren/py.typed",
        "airflow_pywren/runtime/Dockerfile",
        "airflow_pywren/runtime/Dockerfile.dockerignore",
        f"{dist_info}/licenses/LICENSE",
        "airflow_pywren/executor/worker/handler.py",
    } <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "bench", "local_services", "dags", "docker")]
    with zipfile.ZipFile(wheel) as archive:
        assert b"Apache License" in archive.read(f"{dist_info}/licenses/LICENSE")
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "provider_info = airflow_pywren.provider_info:get_provider_info" in entry_points
    assert "pywren = airflow_pywren.cli:main" in entry_points


def test_wheel_metadata_declares_airflow_the_license_and_a_documentation_url(wheel: Path) -> None:
    metadata = _metadata(wheel)
    requires = metadata.get_all("Requires-Dist") or []
    assert f"apache-airflow>={MIN_AIRFLOW_VERSION}" in requires
    assert metadata.get_all("Provides-Extra") == ["plots", "k8s"]  # developer tools are dependency groups, not extras
    assert not [r for r in requires if any(tool in r for tool in ("pytest", "moto", "ruff", "mypy", "selenium"))]
    assert metadata["License-Expression"] == "Apache-2.0"
    classifiers = metadata.get_all("Classifier") or []
    assert {
        "Framework :: Apache Airflow",
        "Framework :: Apache Airflow :: Provider",
        "Typing :: Typed",
        "Programming Language :: Python :: 3.11",
    } <= set(classifiers)
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert urls["Documentation"].startswith(urls["Source"])
    # the Providers page links "documentation" and the integration to these
    assert get_provider_info()["integrations"][0]["external-doc-url"].startswith("https://")


def test_runtime_build_from_an_installed_wheel_uses_the_shipped_dockerfile(wheel: Path, tmp_path: Path) -> None:
    """Outside any checkout: the package comes from the wheel only, and so does the build context."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import json, sys, airflow_pywren, cloudpickle\n"
        "from airflow_pywren.cli import main\n"
        "code = main(['runtime', 'build', '--tag', 'example/runtime:1', '--dry-run'])\n"
        "print(json.dumps({'code': code, 'package': airflow_pywren.__file__, 'cloudpickle': cloudpickle.__version__}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    *printed, last = done.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["code"] == 0 and result["package"].startswith(str(site))
    (build,) = [line[2:].split() for line in printed if line.startswith("$ docker build")]
    context = Path(build[-1])
    dockerfile = Path(build[build.index("-f") + 1])
    assert dockerfile == context / "airflow_pywren" / "runtime" / "Dockerfile" and dockerfile.is_file()
    assert dockerfile.read_text() == (site / "airflow_pywren" / "runtime" / "Dockerfile").read_text()
    assert (context / "airflow_pywren" / "executor" / "worker" / "handler.py").is_file()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert build[:6] == [
        "docker",
        "build",
        "--build-arg",
        f"PYTHON_VERSION={python}",
        "--build-arg",
        f"CLOUDPICKLE_VERSION={result['cloudpickle']}",
    ]
    assert build[build.index("-t") + 1] == "example/runtime:1"


def test_the_checkout_runtime_dockerfile_is_the_shipped_one() -> None:
    """``docker/runtime`` holds the same image definition the package ships (links, not copies)."""
    shipped = REPO_ROOT / "airflow_pywren" / "runtime"
    for name in ("Dockerfile", "Dockerfile.dockerignore"):
        link = REPO_ROOT / "docker" / "runtime" / name
        assert link.is_symlink() and link.resolve() == (shipped / name).resolve()
