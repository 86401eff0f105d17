"""The runtime image's action proxy (``python -m airflow_pywren.executor.worker``), run as a process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airflow_pywren.executor.compute.ibm_cf import ACTION_CODE

pytestmark = pytest.mark.timeout(60)
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(tmp_path):
    log = open(tmp_path / "proxy.log", "w+b")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_pywren.executor.worker", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        cwd=tmp_path,
    )
    line = process.stdout.readline().decode()
    port = int(re.search(r"listening on 127.0.0.1:(\d+)", line).group(1))
    yield f"http://127.0.0.1:{port}", process, log
    process.kill()
    process.wait()
    log.close()


def test_run_before_init_and_second_init_are_refused(proxy):
    url, _, _ = proxy
    assert requests.post(f"{url}/run", json={"value": {}}, timeout=10).status_code == 502
    assert (
        requests.post(f"{url}/init", json={"value": {"code": ACTION_CODE, "main": "main"}}, timeout=10).status_code
        == 200
    )
    second = requests.post(f"{url}/init", json={"value": {"code": ACTION_CODE}}, timeout=10)
    assert second.status_code == 403 and "more than once" in second.json()["error"]


def test_run_exports_openwhisk_variables_and_writes_log_sentinels(proxy):
    url, process, log = proxy
    code = "import os\n\ndef handle(args):\n    print('hello from the action')\n    return {'id': os.environ['__OW_ACTIVATION_ID'], 'args': args}\n"
    assert requests.post(f"{url}/init", json={"value": {"code": code, "main": "handle"}}, timeout=10).status_code == 200
    answer = requests.post(
        f"{url}/run", json={"value": {"a": 1}, "activation_id": "abc123", "namespace": "ns"}, timeout=10
    )
    assert answer.status_code == 200 and answer.json() == {"id": "abc123", "args": {"a": 1}}
    assert process.stdout.readline() == b"hello from the action\n"
    assert process.stdout.readline() == b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
    log.seek(0)
    assert b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" in log.read()


def test_broken_code_and_missing_main_fail_init(proxy):
    url, _, _ = proxy
    broken = requests.post(f"{url}/init", json={"value": {"code": "def main(:\n"}}, timeout=10)
    assert broken.status_code == 502 and "SyntaxError" in broken.json()["error"]
    missing = requests.post(f"{url}/init", json={"value": {"code": "x = 1\n", "main": "main"}}, timeout=10)
    assert missing.status_code == 502 and "no function 'main'" in missing.json()["error"]


def test_handler_errors_answer_502(proxy):
    url, _, _ = proxy
    assert requests.post(f"{url}/init", json={"value": {"code": ACTION_CODE}}, timeout=10).status_code == 200
    answer = requests.post(f"{url}/run", json={"value": {"no": "payload fields"}}, timeout=10)
    assert answer.status_code == 502 and "KeyError" in answer.json()["error"]
