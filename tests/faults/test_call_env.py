"""Calls run with a clean, documented environment: the host's allow-listed variables plus extra_env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.call_env import ALLOWED_NAMES, call_environment
from airflow_pywren.executor.compute.localhost import LocalhostCompute, stop_runners
from tests.conftest import merge_config

SECRETS = {
    "AIRFLOW_CONN_SECRET_DB": "postgres://admin:hunter2@db/prod",
    "AWS_SECRET_ACCESS_KEY": "submitter-aws-secret",
    "PYWREN_FAULT_SUITE_TOKEN": "submitter-token",
}


def environment(_):
    return dict(os.environ)


def set_and_report(name):
    before = os.environ.get(name)
    os.environ[name] = "set-by-an-earlier-call"
    return before


def runner_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.fixture
def own_runner(tmp_path: Path, localhost_config: dict[str, Any]):
    config = merge_config(localhost_config, {"localhost": {"runner_dir": str(tmp_path / "runner"), "workers": 1}})
    yield config
    stop_runners(tmp_path / "runner")


def test_detached_runner_and_its_calls_never_see_the_submitters_secrets(own_runner, monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with pywren.FunctionExecutor(config=own_runner) as submitter:  # this process starts the runner
        env = submitter.get_result(submitter.call_async(environment, None, extra_env={"WANTED": "yes"}))
        submitter.clean()
    assert env["WANTED"] == "yes" and env["PATH"]
    assert not set(SECRETS) & set(env)
    assert set(env) - {"WANTED"} <= ALLOWED_NAMES | {n for n in env if n.startswith("LC_")}
    pid = LocalhostCompute(pywren.FunctionExecutor(config=own_runner).config).stats()["pid"]
    held = runner_environ(pid)
    assert not set(SECRETS) & set(held) and not any(v in held.values() for v in SECRETS.values())
    for name in SECRETS:
        monkeypatch.delenv(name)
    with pywren.FunctionExecutor(config=own_runner) as later:  # another DAG's job on the same warm runner
        env = later.get_result(later.call_async(environment, None))
        later.clean()
    assert not set(SECRETS) & set(env) and "WANTED" not in env


def test_a_call_cannot_leave_variables_for_the_next_call(own_runner) -> None:
    with pywren.FunctionExecutor(config=own_runner) as executor:  # one worker: both calls run in the same process
        first = executor.get_result(executor.call_async(set_and_report, "LEFT_BEHIND"))
        second = executor.get_result(executor.call_async(set_and_report, "LEFT_BEHIND"))
        extra = executor.get_result(executor.call_async(environment, None, extra_env={"ONLY_HERE": "1"}))
        after = executor.get_result(executor.call_async(environment, None))
        executor.clean()
    assert first is None and second is None
    assert extra["ONLY_HERE"] == "1" and "ONLY_HERE" not in after


def test_openwhisk_calls_see_only_the_allow_list_and_extra_env(openwhisk_server, localhost_config, monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # a new action container (fresh namespace) inherits these from the host
    namespace, _ = openwhisk_server.add_namespace()
    config = merge_config(
        localhost_config, {"pywren": {"compute_backend": "ibm_cf"}, "ibm_cf": openwhisk_server.settings(namespace)}
    )
    with pywren.FunctionExecutor(config=config) as executor:
        env = executor.get_result(executor.call_async(environment, None, extra_env={"WANTED": "yes"}))
        executor.clean()
    assert env["WANTED"] == "yes" and env["__OW_ACTIVATION_ID"]
    assert not set(SECRETS) & set(env)
    assert "__OW_API_KEY" not in env  # the namespace key is not the function's


def test_the_call_environment_is_set_and_restored_in_process(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_DB", SECRETS["AIRFLOW_CONN_SECRET_DB"])
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    before = dict(os.environ)
    with call_environment({"GREETING": "hello", "TZ": "Europe/Madrid"}):
        inside = dict(os.environ)
        os.environ["LEFT_BEHIND"] = "by the call"
        os.environ["LANG"] = "changed by the call"
        del os.environ["PATH"]
    assert "AIRFLOW_CONN_SECRET_DB" not in inside and inside["LANG"] == "C.UTF-8"
    assert (inside["GREETING"], inside["TZ"]) == ("hello", "Europe/Madrid")
    assert all(name in ALLOWED_NAMES or name.startswith("LC_") or name == "GREETING" for name in inside)
    assert dict(os.environ) == before  # hidden, overridden, added, changed and deleted variables all restored
