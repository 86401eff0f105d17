"""The ``pywren runtime`` commands with the k8s and code_engine backends (test servers)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from airflow_pywren.cli import main
from tests.conftest import merge_config

pytestmark = pytest.mark.timeout(180)
REPO_ROOT = Path(__file__).resolve().parents[2]


def run(capsys, monkeypatch, config, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(config))
    capsys.readouterr()
    logging.disable(logging.CRITICAL)
    try:
        code = main(list(argv))
    finally:
        logging.disable(logging.NOTSET)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_deploy_runs_a_call_with_the_image_on_kubernetes(server, namespace, k8s_config, capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, k8s_config, "runtime", "deploy", "--memory", "256", "512")
    assert code == 0, err
    assert out.count("k8s: Hello runtime! image=airflowpywren/runtime:test") == 2
    assert "memory=512MB" in out
    assert server.requests_in(namespace)["POST batch/jobs"] == 2
    code, out, _ = run(capsys, monkeypatch, k8s_config, "runtime", "list")
    assert code == 0 and "keeps no deployed runtimes" in out


def test_deploy_of_an_image_that_cannot_be_pulled_fails(k8s_config, capsys, monkeypatch):
    config = merge_config(k8s_config, {"k8s": {"runtime": "registry.example/nope:1"}})
    code, _, err = run(capsys, monkeypatch, config, "runtime", "deploy")
    assert code == 1 and "cannot start" in err and "registry.example/nope:1" in err


def test_deploy_on_code_engine(code_engine_server, localhost_config, capsys, monkeypatch):
    project, _ = code_engine_server.add_project()
    config = merge_config(
        localhost_config,
        {
            "pywren": {"compute_backend": "code_engine"},
            "code_engine": {**code_engine_server.settings(project), "runtime": "airflowpywren/runtime:test"},
        },
    )
    code, out, err = run(capsys, monkeypatch, config, "runtime", "deploy")
    assert code == 0, err
    assert "code_engine: Hello runtime! image=airflowpywren/runtime:test memory=256MB" in out


@pytest.mark.parametrize("backend", ["k8s", "code_engine"])
def test_build_tags_the_image_the_configured_batch_backend_runs(backend, localhost_config, capsys, monkeypatch):
    """With no --tag, the image built is the one the k8s or code_engine section names, from the package's Dockerfile."""
    config = merge_config(
        localhost_config,
        {"pywren": {"compute_backend": backend}, backend: {"runtime": f"registry.example/{backend}/runtime:7"}},
    )
    code, out, err = run(capsys, monkeypatch, config, "runtime", "build", "--context", str(REPO_ROOT), "--dry-run")
    assert code == 0, err
    assert out.splitlines()[0].endswith(
        f"-f {REPO_ROOT / 'airflow_pywren/runtime/Dockerfile'} -t registry.example/{backend}/runtime:7 {REPO_ROOT}"
    )


def test_deploy_with_an_incomplete_code_engine_section_names_what_it_lacks(localhost_config, capsys, monkeypatch):
    config = merge_config(localhost_config, {"pywren": {"compute_backend": "code_engine"}})
    code, _, err = run(capsys, monkeypatch, config, "runtime", "deploy")
    assert code == 1 and "'code_engine.project_id'" in err and "ibm_cf" not in err
