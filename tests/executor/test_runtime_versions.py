"""The function side refuses a job pickled on another Python minor version or cloudpickle major.minor."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import versions
from airflow_pywren.executor.versions import RuntimeVersionError, check_client_versions, client_versions

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_the_client_sends_its_python_minor_and_cloudpickle_versions() -> None:
    assert client_versions() == {"python": PYTHON, "cloudpickle": cloudpickle.__version__}


@pytest.mark.parametrize(
    "client",
    [
        {"python": PYTHON, "cloudpickle": cloudpickle.__version__},
        {"python": PYTHON, "cloudpickle": ".".join(cloudpickle.__version__.split(".")[:2] + ["99"])},  # a patch release
        None,  # a payload from a client that sends no versions
    ],
)
def test_compatible_versions_pass(client: dict[str, str] | None) -> None:
    check_client_versions(client)


@pytest.mark.parametrize(
    ("client", "runtime"),
    [
        ({"python": "3.12", "cloudpickle": "3.1.1"}, {"python": "3.11", "cloudpickle": "3.1.1"}),
        ({"python": "3.11", "cloudpickle": "3.1.1"}, {"python": "3.11", "cloudpickle": "3.0.0"}),
        ({"python": "3.11", "cloudpickle": "2.2.1"}, {"python": "3.11", "cloudpickle": "3.1.1"}),
    ],
)
def test_a_mismatch_names_both_versions_and_the_fix(client: dict[str, str], runtime: dict[str, str]) -> None:
    with pytest.raises(RuntimeVersionError) as caught:
        check_client_versions(client, runtime)
    message = str(caught.value)
    assert f"the client runs Python {client['python']} with cloudpickle {client['cloudpickle']}" in message
    assert f"this runtime has Python {runtime['python']} with cloudpickle {runtime['cloudpickle']}" in message
    assert "Rebuild the runtime image from the client's environment (pywren runtime build" in message


def test_a_call_from_a_client_on_other_versions_fails_before_the_function_runs(
    localhost_config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker (a real runner process) compares the job's versions with its own."""
    marker = tmp_path / "ran"
    monkeypatch.setattr(versions, "client_versions", lambda: {"python": "3.99", "cloudpickle": "0.1.0"})
    pw = pywren.FunctionExecutor(config=localhost_config)
    try:
        future = pw.call_async(lambda path: Path(path).touch(), str(marker))
        with pytest.raises(
            RuntimeVersionError,
            match=r"the client runs Python 3\.99 with cloudpickle 0\.1\.0, "
            rf"but this runtime has Python {PYTHON} with cloudpickle ",
        ):
            pw.get_result(future, timeout=120)
        assert future.status == "error" and not marker.exists()
    finally:
        pw.clean()
        pw.close()
