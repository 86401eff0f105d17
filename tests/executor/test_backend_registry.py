"""Backends own their settings: a new backend is one module plus one registry entry, and nothing else.

The module below is the whole of a new compute backend (each call runs the function-side handler
in a process of its own). Registering it makes ``pywren.compute_backend`` accept its name, its
config section known (types, defaults, bounds) and its own check run, and the executor use it.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import compute, storage
from airflow_pywren.executor.config import backend_classes, load_config, schema
from airflow_pywren.executor.errors import PyWrenConfigError
from tests.conftest import merge_config

PROCESS_BACKEND = '''
import json
import subprocess
from typing import Any, ClassVar

from airflow_pywren.executor.compute.base import ComputeBackend, Invocation
from airflow_pywren.executor.config import Setting
from airflow_pywren.executor.errors import PyWrenConfigError

RUN_CALL = "import json, sys; from airflow_pywren.executor.worker.handler import main; main(json.load(sys.stdin))"


class ProcessCompute(ComputeBackend):
    """Each call in a new Python process on this machine."""

    name = "processes"
    is_local = True
    settings_schema: ClassVar[dict[str, Setting]] = {
        "python": Setting((str, type(None)), None, "interpreter that runs the calls"),
        "max_calls": Setting((int,), 100, "calls one job may have", minimum=1),
    }

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        if not settings["python"]:
            raise PyWrenConfigError("compute_backend 'processes' needs 'processes.python', e.g. /usr/bin/python3")

    def __init__(self, config):
        super().__init__(config)
        self.processes = []

    def invoke(self, job, calls):
        """Start one process per call, up to max_calls; refuse the rest. Returns without waiting."""
        settings = self.config["processes"]
        invocations = []
        for index, call in enumerate(calls):
            if index >= settings["max_calls"]:
                invocations.append(Invocation(call["call_id"], error=f"more than {settings['max_calls']} calls"))
                continue
            process = subprocess.Popen([settings["python"], "-c", RUN_CALL], stdin=subprocess.PIPE, text=True)
            process.stdin.write(json.dumps({**job, **call}))
            process.stdin.close()
            self.processes.append(process)
            invocations.append(Invocation(call["call_id"], activation_id=f"pid-{process.pid}"))
        return invocations

    def close(self):
        for process in self.processes:
            process.wait()
'''


@pytest.fixture
def process_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module on the path and its one registry entry."""
    (tmp_path / "process_backend.py").write_text(textwrap.dedent(PROCESS_BACKEND))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(compute.BACKENDS, "processes", "process_backend:ProcessCompute")


def test_backend_names_and_sections_come_from_the_registries() -> None:
    sections = schema()
    assert sections["pywren"]["compute_backend"].choices == tuple(compute.BACKENDS)
    assert sections["pywren"]["storage_backend"].choices == tuple(storage.BACKENDS)
    assert {backend.name for backend in backend_classes()} == {*compute.BACKENDS, *storage.BACKENDS}
    # each backend declares its own keys; localhost compute and storage share the section
    assert {"storage_dir", "data_dir", "workers", "runner_dir"} <= set(sections["localhost"])
    assert set(sections["ibm_cos"]) == set(storage.storage_class("ibm_cos").settings_schema)
    assert [b.name for b in backend_classes() if b.is_local] == ["localhost", "localhost"]


def test_a_registered_backend_has_its_section_validated(process_backend: None) -> None:
    with pytest.raises(PyWrenConfigError, match="needs 'processes.python'"):
        load_config({"pywren": {"compute_backend": "processes"}})
    with pytest.raises(PyWrenConfigError, match="unknown key 'max_cals' in section 'processes'.*'max_calls'"):
        load_config({"processes": {"max_cals": 3}})
    with pytest.raises(PyWrenConfigError, match="'processes.max_calls' must be 1 or more, got 0"):
        load_config({"processes": {"max_calls": 0}})
    assert load_config()["processes"] == {"python": None, "max_calls": 100}  # not chosen: not checked


def test_without_its_registry_entry_the_name_is_refused() -> None:
    with pytest.raises(PyWrenConfigError, match="'pywren.compute_backend'.*choose one of localhost, ibm_cf"):
        load_config({"pywren": {"compute_backend": "processes"}})


def test_the_executor_runs_calls_on_the_registered_backend(
    process_backend: None, localhost_config: dict[str, Any]
) -> None:
    config = merge_config(
        localhost_config,
        {
            "pywren": {"compute_backend": "processes"},
            "processes": {"python": sys.executable, "max_calls": 3},
        },
    )
    executor = pywren.FunctionExecutor(config=config)
    try:
        assert executor.compute.name == "processes"
        futures = executor.map(lambda x: x * 10, [1, 2, 3])
        assert executor.get_result(futures, timeout=120) == [10, 20, 30]
        assert all(f.activation_id.startswith("pid-") for f in futures)
        refused = executor.map(lambda x: x, range(4))  # over a max_calls of 3
        done, _ = executor.wait(refused, timeout=120)
        assert [f.status for f in done].count("error") == 1
        with pytest.raises(Exception, match="more than 3 calls"):
            refused[3].result()
    finally:
        executor.clean()
        executor.close()
