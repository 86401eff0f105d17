"""The OpenWhisk-API test server itself: REST behaviour and activations run by the action proxy."""

from __future__ import annotations

import os

import pytest
import requests

pytestmark = pytest.mark.timeout(120)

ECHO = """
import os

def main(args):
    return {"args": args, "pid": os.getpid(), "activation": os.environ.get("__OW_ACTIVATION_ID"),
            "action": os.environ.get("__OW_ACTION_NAME")}
"""
SLOW = "import time\n\ndef main(args):\n    time.sleep(args['seconds'])\n    return {}\n"
NOT_A_DICT = "def main(args):\n    return [1, 2]\n"
RAISES = "def main(args):\n    raise ValueError('broken action')\n"


@pytest.fixture
def api(server, namespace):
    """A requests session authenticated for the fresh namespace, and the namespace's base URL."""
    session = requests.Session()
    user, _, key = server.settings(namespace)["api_key"].partition(":")
    session.auth = (user, key)
    yield session, f"{server.url}/api/v1/namespaces/{namespace}"
    session.close()


def put(session, base, name, code, timeout_ms=60_000, overwrite=True):
    body = {"exec": {"kind": "python:3", "code": code}, "limits": {"timeout": timeout_ms, "memory": 256}}
    return session.put(f"{base}/actions/{name}", params={"overwrite": str(overwrite).lower()}, json=body, timeout=10)


def test_unknown_namespace_and_action_are_404(server, api):
    session, base = api
    assert session.get(f"{server.url}/api/v1/namespaces/nowhere/actions", timeout=10).status_code == 404
    answer = session.get(f"{base}/actions/missing", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"] == "The requested resource does not exist."
    assert session.post(f"{base}/actions/missing", params={"blocking": "false"}, json={}, timeout=10).status_code == 404
    assert session.delete(f"{base}/actions/missing", timeout=10).status_code == 404


def test_requests_are_authenticated_then_routed_by_whole_path(server, api):
    session, base = api
    assert requests.get(f"{server.url}/api/v1/no/such/path", timeout=10).status_code == 401
    assert session.get(f"{server.url}/api/v1/no/such/path", timeout=10).status_code == 404
    other = f"{server.url}/api/v1/namespaces/{server.default_namespace}"
    assert session.get(f"{other}/rules", timeout=10).status_code == 403  # the namespace is checked first
    assert session.get(f"{base}/rules", timeout=10).status_code == 404
    assert session.put(f"{base}/actions", json={}, timeout=10).status_code == 405
    assert put(session, base, "with space", ECHO).json()["name"] == "with space"  # path parts are unquoted
    assert session.get(f"{base}/actions/with%20space", timeout=10).json()["name"] == "with space"
    assert session.get(f"{server.url}/api/v1/namespaces/_/actions/with%20space", timeout=10).status_code == 200
    assert session.get(f"{base}/actions/with%20space/more", timeout=10).status_code == 404


def test_put_validates_and_needs_overwrite_to_replace(api):
    session, base = api
    assert put(session, base, "echo", ECHO).json()["version"] == "0.0.1"
    assert put(session, base, "echo", ECHO, overwrite=False).status_code == 409
    assert put(session, base, "echo", ECHO).json()["version"] == "0.0.2"
    bad_memory = {"exec": {"kind": "blackbox", "image": "x/y"}, "limits": {"memory": 8000}}
    assert session.put(f"{base}/actions/big", json=bad_memory, timeout=10).status_code == 400
    no_image = {"exec": {"kind": "blackbox"}}
    assert session.put(f"{base}/actions/noimage", json=no_image, timeout=10).status_code == 400
    assert [a["name"] for a in session.get(f"{base}/actions", timeout=10).json()] == ["echo"]


def test_activation_runs_in_a_container_process_with_openwhisk_variables(server, namespace, api):
    session, base = api
    put(session, base, "echo", ECHO)
    answer = session.post(
        f"{base}/actions/echo", params={"blocking": "true", "result": "true"}, json={"x": 1}, timeout=60
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["args"] == {"x": 1} and result["pid"] != os.getpid()
    assert result["action"] == f"/{namespace}/echo" and len(result["activation"]) == 32
    record = session.get(f"{base}/activations/{result['activation']}", timeout=10).json()
    assert record["response"]["success"] and record["response"]["result"]["pid"] == result["pid"]


def test_non_blocking_invoke_answers_202_with_an_activation_id(server, api):
    session, base = api
    put(session, base, "echo", ECHO)
    answer = session.post(f"{base}/actions/echo", params={"blocking": "false"}, json={"n": 2}, timeout=10)
    assert answer.status_code == 202 and set(answer.json()) == {"activationId"}
    server.wait_idle()
    record = session.get(f"{base}/activations/{answer.json()['activationId']}", timeout=10).json()
    assert record["response"]["result"]["args"] == {"n": 2}


def test_action_errors_and_timeouts(api):
    session, base = api
    for name, code in (("list", NOT_A_DICT), ("raises", RAISES)):
        put(session, base, name, code)
    answer = session.post(f"{base}/actions/list", params={"blocking": "true"}, json={}, timeout=60)
    assert (
        answer.status_code == 502
        and answer.json()["response"]["result"]["error"] == "The action did not return a dictionary."
    )
    answer = session.post(f"{base}/actions/raises", params={"blocking": "true"}, json={}, timeout=60)
    assert answer.json()["response"]["status"] == "application error"
    assert "ValueError: broken action" in answer.json()["response"]["result"]["error"]
    put(session, base, "slow", SLOW, timeout_ms=500)
    answer = session.post(f"{base}/actions/slow", params={"blocking": "true"}, json={"seconds": 30}, timeout=60)
    assert answer.json()["response"]["status"] == "action developer error"
    assert "exceeded its time limits of 500 milliseconds" in answer.json()["response"]["result"]["error"]


def test_injected_faults_answer_before_anything_runs(server, namespace, api):
    session, base = api
    put(session, base, "echo", ECHO)
    server.inject(429, 2, namespace)
    statuses = [
        session.post(f"{base}/actions/echo", params={"blocking": "false"}, json={}, timeout=10).status_code
        for _ in range(3)
    ]
    assert statuses == [429, 429, 202]
    assert len(server.invocations_of(namespace)) == 1 and server.attempts["echo"] == 3
