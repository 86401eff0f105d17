"""The ``pywren`` command against the OpenWhisk-API test server."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_pywren as pywren
from airflow_pywren.cli import main
from airflow_pywren.executor import keys
from tests.conftest import merge_config

pytestmark = pytest.mark.timeout(120)
REPO_ROOT = Path(__file__).resolve().parents[2]


def square(x):
    return x * x


@pytest.fixture
def cli_config(server, namespace, localhost_config, monkeypatch):
    """PYWREN_CONFIG for the CLI: localhost storage; the ibm_cf section on the fresh namespace."""
    config = merge_config(localhost_config, {"ibm_cf": server.settings(namespace)})
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(config))
    return config


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the command in this process; log records are kept out of its output (Airflow, once
    imported by other tests, sends them to stdout)."""
    capsys.readouterr()
    logging.disable(logging.CRITICAL)
    try:
        code = main(list(argv))
    finally:
        logging.disable(logging.NOTSET)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_runtime_deploy_list_delete(server, namespace, cli_config, capsys):
    code, out, _ = run(capsys, "runtime", "deploy", "--memory", "256", "512")
    assert code == 0
    assert out.splitlines() == [
        "deployed pywren_airflowpywren_runtime_test_256MB  image=airflowpywren/runtime:test  memory=256MB",
        "deployed pywren_airflowpywren_runtime_test_512MB  image=airflowpywren/runtime:test  memory=512MB",
    ]
    assert sorted(server.namespaces[namespace].actions) == [
        "pywren_airflowpywren_runtime_test_256MB",
        "pywren_airflowpywren_runtime_test_512MB",
    ]
    assert run(capsys, "runtime", "deploy", "--memory", "1024", "--runtime", "other/image:2")[0] == 0

    code, out, _ = run(capsys, "runtime", "list")
    rows = [line.split() for line in out.splitlines()]
    assert code == 0 and rows[0] == ["ACTION", "MEMORY", "IMAGE"]
    assert rows[1:] == [
        ["pywren_airflowpywren_runtime_test_256MB", "256MB", "airflowpywren/runtime:test"],
        ["pywren_airflowpywren_runtime_test_512MB", "512MB", "airflowpywren/runtime:test"],
        ["pywren_other_image_2_1024MB", "1024MB", "other/image:2"],
    ]

    assert run(capsys, "runtime", "delete", "--memory", "512")[1] == "deleted pywren_airflowpywren_runtime_test_512MB\n"
    assert run(capsys, "runtime", "delete")[1] == "deleted pywren_airflowpywren_runtime_test_256MB\n"
    assert run(capsys, "runtime", "delete")[1] == "no action to delete\n"
    assert sorted(server.namespaces[namespace].actions) == ["pywren_other_image_2_1024MB"]
    assert run(capsys, "runtime", "delete", "--all")[1] == "deleted pywren_other_image_2_1024MB\n"
    assert "no actions with prefix 'pywren_'" in run(capsys, "runtime", "list")[1]


def test_test_command_runs_hello_world_on_the_configured_backends(server, namespace, cli_config, monkeypatch, capsys):
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(merge_config(cli_config, {"pywren": {"compute_backend": "ibm_cf"}})))
    code, out, err = run(capsys, "test")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Hello World!"
    assert lines[1].startswith("compute=ibm_cf storage=localhost activation=")
    activation = lines[1].split("activation=")[1].split()[0]
    assert [r["activation_id"] for r in server.invocations_of(namespace)] == [activation]


def test_clean_removes_an_executors_data(cli_config, capsys):
    executor = pywren.FunctionExecutor(config=cli_config)
    executor.get_result(executor.map(square, [1, 2]))
    prefix = keys.executor_prefix(executor.storage.prefix, executor.executor_id)
    stored = len(executor.storage.list_keys(prefix))
    code, out, _ = run(capsys, "clean", "--executor-id", executor.executor_id)
    assert code == 0 and out.startswith(f"removed {stored} object(s) of executor {executor.executor_id}")
    assert executor.storage.list_keys(prefix) == []
    executor.close()


def test_bad_key_is_reported_with_exit_code_1(server, namespace, localhost_config, monkeypatch, capsys):
    settings = server.settings(namespace, api_key="someone:wrong")
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(merge_config(localhost_config, {"ibm_cf": settings})))
    code, out, err = run(capsys, "runtime", "list")
    assert code == 1 and out == ""
    assert err.startswith("pywren: error: OpenWhisk at") and "rejected 'ibm_cf.api_key'" in err


def test_runtime_build_dry_run_prints_the_docker_commands(capsys):
    code, out, _ = run(
        capsys,
        "runtime",
        "build",
        "--tag",
        "example/runtime:1",
        "--python",
        "3.11",
        "--cloudpickle",
        "3.1.1",
        "--push",
        "--dry-run",
    )
    assert code == 0
    build, push, kept = out.splitlines()
    context = Path(kept.split()[4])
    try:
        assert build == (
            f"$ docker build --build-arg PYTHON_VERSION=3.11 --build-arg CLOUDPICKLE_VERSION=3.1.1 "
            f"-f {context / 'airflow_pywren/runtime/Dockerfile'} -t example/runtime:1 {context}"
        )
        assert push == "$ docker push example/runtime:1"
        assert kept == f"# the build context {context} is kept for these commands"
        # the context is a copy of this installation's package, Dockerfile included
        assert (context / "airflow_pywren/runtime/Dockerfile").read_text() == (
            REPO_ROOT / "airflow_pywren/runtime/Dockerfile"
        ).read_text()
        assert (context / "airflow_pywren/executor/worker/handler.py").is_file()
        assert not list(context.rglob("__pycache__"))
    finally:
        shutil.rmtree(context, ignore_errors=True)


def test_runtime_build_from_a_source_checkout_uses_it_as_the_context(capsys):
    code, out, _ = run(capsys, "runtime", "build", "--tag", "t:1", "--context", str(REPO_ROOT), "--dry-run")
    assert code == 0
    assert out.splitlines()[0].endswith(f"-f {REPO_ROOT / 'airflow_pywren/runtime/Dockerfile'} -t t:1 {REPO_ROOT}")


def test_runtime_build_refuses_a_context_without_the_package(capsys, tmp_path):
    code, _, err = run(capsys, "runtime", "build", "--tag", "t:1", "--context", str(tmp_path), "--dry-run")
    assert code == 1 and "--context must be a source checkout of airflow-pywren" in err


def test_module_entry_point_in_a_subprocess(server, namespace, cli_config):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    deployed = subprocess.run(
        [sys.executable, "-m", "airflow_pywren.cli", "runtime", "deploy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert deployed.returncode == 0, deployed.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "airflow_pywren.cli", "runtime", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "pywren_airflowpywren_runtime_test_256MB" in listed.stdout
    assert list(server.namespaces[namespace].actions) == ["pywren_airflowpywren_runtime_test_256MB"]
