"""Calls whose OpenWhisk activation ended without a final status are failed promptly, with the platform's reason.

Every call here has a 600 s timeout: were the loss only noticed after timeout plus
``pywren.lost_call_grace``, the module's pytest timeout would fail the test first.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import requests

from airflow_pywren.executor import lost_calls
from airflow_pywren.executor.compute import ibm_cf_lost
from airflow_pywren.executor.compute.base import PendingCall
from airflow_pywren.executor.errors import ActivationLostError
from tests.conftest import merge_config
from tests.openwhisk.calls import LONG, double, nap_and_double, tenfold_but_three_exits
from tests.services.openwhisk import ABNORMAL_RUN, MEMORY_EXHAUSTED

pytestmark = pytest.mark.timeout(120)


def tenfold_but_two_is_killed(x):
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return 10 * x


def nap_but_twenty_exits(x):
    time.sleep(0.2)
    if x == 20:
        os._exit(3)
    return 10 * x


def ignore_own_timeout_and_sleep(seconds):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # the call's own timeout can no longer stop it
    time.sleep(seconds)
    return seconds


def hold_memory(megabytes, seconds):
    block = b"\x01" * (megabytes * 1024 * 1024)  # written, so resident
    time.sleep(seconds)
    return len(block)


@pytest.fixture
def config(any_storage_config: dict[str, Any]) -> dict[str, Any]:
    """ibm_cf on a fresh namespace, checking for lost activations every 0.2 s, with either storage."""
    return merge_config(any_storage_config, {"ibm_cf": {"lost_check_interval": 0.2}})


def record_requests(server, namespace: str) -> tuple[list[dict], list[dict]]:
    """The client's activation list requests and its GETs of single records, in this namespace."""
    made = [r for r in server.activation_requests if r["namespace"] == namespace]
    return [r for r in made if r["activation_id"] is None], [r for r in made if r["activation_id"] is not None]


# ------------------------------------------------------------------ the executor
def test_a_call_that_exits_its_process_fails_promptly_with_the_platform_reason(server, namespace, config, executors):
    pw = executors(config)
    futures = pw.map(tenfold_but_three_exits, range(6), timeout=LONG)
    with pytest.raises(ActivationLostError) as raised:
        pw.get_result(futures)
    message = str(raised.value)
    lost = futures[3]
    assert f"call {lost.call_id} of job {lost.job_id}" in message and lost.activation_id in message
    assert f"status 'action developer error': {ABNORMAL_RUN}" in message
    assert "raise runtime_memory" in message
    assert [f.status for f in futures] == ["success"] * 3 + ["error"] + ["success"] * 2
    assert [f.result() for f in futures if f is not lost] == [0, 10, 20, 40, 50]
    record = server.activation(lost.activation_id).record()
    assert record["response"]["status"] == "action developer error"  # the test server's record agrees

    other = executors(config)  # another process attaching by ids reads the same verdict from storage
    attached = other.job_futures(lost.job_id, executor_id=pw.executor_id)
    other.wait(attached)
    assert str(attached[3].exception()) == message
    assert [f.status for f in attached] == [f.status for f in futures]


def test_a_process_attached_by_ids_finds_the_loss_itself(server, namespace, config, executors):
    submitter = executors(config)
    futures = submitter.map(tenfold_but_two_is_killed, range(4), timeout=LONG)  # nobody waits here
    watcher = executors(config)
    attached = watcher.job_futures(futures[0].job_id, executor_id=submitter.executor_id)
    done, not_done = watcher.wait(attached)
    assert not not_done
    error = attached[2].exception()
    assert isinstance(error, ActivationLostError)
    assert futures[2].activation_id in str(error) and ABNORMAL_RUN in str(error)
    assert [f.result() for f in attached if f is not attached[2]] == [0, 10, 30]
    assert str(futures[2].exception()) == str(error)  # and the submitter sees the same


def test_a_call_past_the_action_time_limit_names_the_limit_and_the_fix(server, namespace, config, executors):
    pw = executors(merge_config(config, {"ibm_cf": {"timeout": 2}}))  # the action's limit: 2000 ms
    future = pw.call_async(ignore_own_timeout_and_sleep, 60, timeout=LONG)
    with pytest.raises(ActivationLostError) as raised:
        future.result()
    message = str(raised.value)
    assert future.activation_id in message
    assert "status 'action developer error': The action exceeded its time limits of 2000 milliseconds." in message
    assert "time limit of 2 s ('ibm_cf.timeout')" in message and "raise 'ibm_cf.timeout'" in message


def test_a_call_killed_for_memory_says_to_raise_runtime_memory(server, namespace, ow_config, executors):
    pw = executors(merge_config(ow_config, {"ibm_cf": {"lost_check_interval": 0.2}}))
    future = pw.call_async(hold_memory, {"megabytes": 400, "seconds": 30}, runtime_memory=128, timeout=LONG)
    with pytest.raises(ActivationLostError) as raised:
        future.result()
    message = str(raised.value)
    assert future.activation_id in message and MEMORY_EXHAUSTED in message
    assert "more memory than the action's 128 MB; raise runtime_memory" in message
    small = pw.call_async(hold_memory, {"megabytes": 20, "seconds": 0.1}, runtime_memory=256, timeout=LONG)
    assert pw.get_result(small) == 20 * 1024 * 1024


def test_an_activation_that_never_ran_is_failed_with_the_platform_error(server, namespace, config, executors):
    pw = executors(config)
    server.fail_activations(1, namespace=namespace)  # OpenWhisk could not provision a container
    future = pw.call_async(double, 1, timeout=LONG)
    with pytest.raises(ActivationLostError) as raised:
        future.result()
    message = str(raised.value)
    assert future.activation_id in message and future.worker_pid is None  # the handler never ran
    assert "status 'whisk internal error': Failed to provision resources to run the action." in message
    assert "submit the call again" in message
    assert pw.get_result(pw.call_async(double, 2, timeout=LONG)) == 4


def test_a_process_attached_by_ids_finds_an_activation_that_never_ran(server, namespace, config, executors):
    """The activation ids are stored at submit: an observer needs no start status to check a call."""
    submitter = executors(config)
    server.fail_activations(1, namespace=namespace)
    futures = submitter.map(double, [5, 6], timeout=LONG)  # nobody waits here
    watcher = executors(config)
    attached = watcher.job_futures(futures[0].job_id, executor_id=submitter.executor_id)
    assert [f.activation_id for f in attached] == [f.activation_id for f in futures]
    done, not_done = watcher.wait(attached)
    assert not not_done
    lost = [f for f in attached if f.status == "error"]
    assert len(lost) == 1 and lost[0].worker_pid is None  # the handler never ran
    assert isinstance(lost[0].exception(), ActivationLostError)
    assert "Failed to provision resources to run the action." in str(lost[0].exception())
    assert sorted(f.result() for f in attached if f is not lost[0]) in ([10], [12])


# ------------------------------------------------------------------ cost of the checks
def test_normal_calls_are_never_flagged_and_a_check_is_one_request(
    server, namespace, ow_config, executors, monkeypatch
):
    monkeypatch.setattr(lost_calls, "CHECK_SHARE", 1.0)  # no client-side spacing of checks either
    pw = executors(merge_config(ow_config, {"ibm_cf": {"lost_check_interval": 0}}))  # check on every poll
    futures = pw.map(nap_and_double, range(40), timeout=LONG)
    assert pw.get_result(futures) == [2 * i for i in range(40)]
    checks = pw.compute.lost_finder.checks
    lists, gets = record_requests(server, namespace)
    assert checks >= 5
    assert len(lists) + len(gets) <= checks  # one list page (or one GET of the last call's record) per check
    assert lists and all(
        r["query"]["name"] == pw.compute.action_name(256)
        and r["query"]["limit"] == "200"
        and int(r["query"]["since"]) <= futures[0].host_submit_time * 1000
        for r in lists
    )


def test_a_lost_call_among_many_costs_one_record_read(server, namespace, ow_config, executors, monkeypatch):
    monkeypatch.setattr(ibm_cf_lost, "PAGE_SIZE", 5)  # a listing of the 24 activations spans five pages
    pw = executors(merge_config(ow_config, {"ibm_cf": {"lost_check_interval": 0.2}}))
    futures = pw.map(nap_but_twenty_exits, range(24), timeout=LONG)  # 8 containers: it runs in the third wave
    done, not_done = pw.wait(futures)
    assert not not_done and [f.status for f in futures].count("error") == 1
    assert isinstance(futures[20].exception(), ActivationLostError)
    lists, gets = record_requests(server, namespace)
    checks = pw.compute.lost_finder.checks
    assert [r["activation_id"] for r in gets if r["activation_id"] == futures[20].activation_id] == [
        futures[20].activation_id
    ]  # its record, read once; the successes' records never
    assert len(gets) <= checks + 1 and len(lists) <= 5 * checks  # a check: one page per 5 activations, or GETs
    assert all(r["query"]["limit"] == "5" for r in lists)


def pending_calls(futures) -> list[PendingCall]:
    return [
        PendingCall(f.executor_id, f.job_id, f.call_id, f.activation_id, f.host_submit_time, started=True)
        for f in futures
    ]


def test_a_check_pages_through_the_listing_and_then_reads_single_records(
    server, namespace, ow_config, executors, monkeypatch
):
    monkeypatch.setattr(ibm_cf_lost, "PAGE_SIZE", 5)
    pw = executors(ow_config)
    futures = pw.map(double, range(24), timeout=LONG)
    assert pw.get_result(futures) == [2 * i for i in range(24)]
    assert server.wait_idle(60)  # a result is stored before the action returns: let every record end
    finder = ibm_cf_lost.LostActivationFinder(pw.compute.client, 0, pw.compute.lost_finder.job_actions)
    already = len(server.activation_requests)

    ended = finder.find(pending_calls(futures))  # all 24 ended: found over five pages of the action's listing
    assert sorted(ended) == sorted(f.activation_id for f in futures)
    assert all("status 'success'" in reason for reason in ended.values())
    asked = [r for r in server.activation_requests[already:] if r["namespace"] == namespace]
    lists = [r for r in asked if r["activation_id"] is None]
    assert len(lists) == len(asked)  # no record read: a listed success needs none
    assert [int(r["query"]["skip"]) for r in lists] == [0, 5, 10, 15, 20]
    assert all(r["query"]["limit"] == "5" and r["query"]["name"] == pw.compute.action_name(256) for r in lists)

    already = len(server.activation_requests)
    ended = finder.find(pending_calls(futures[:3]))  # three left, fewer than the last listing's pages: three GETs
    assert sorted(ended) == sorted(f.activation_id for f in futures[:3])
    asked = [r for r in server.activation_requests[already:] if r["namespace"] == namespace]
    assert sorted(r["activation_id"] for r in asked) == sorted(f.activation_id for f in futures[:3])


# ------------------------------------------------------------------ the test server's records
def test_the_activation_list_follows_the_api(server, namespace):
    user, _, key = server.settings(namespace)["api_key"].partition(":")
    session = requests.Session()
    session.auth = (user, key)
    base = f"{server.url}/api/v1/namespaces/{namespace}"
    code = (
        "import os, time\n\ndef main(args):\n    time.sleep(args.get('sleep', 0))\n    if args.get('exit'):\n"
        "        os._exit(1)\n    return {'n': args['n']}\n"
    )
    for name in ("one", "two"):
        body = {"exec": {"kind": "python:3", "code": code}, "limits": {"timeout": 60_000, "memory": 256}}
        assert (
            session.put(f"{base}/actions/{name}", params={"overwrite": "true"}, json=body, timeout=10).status_code
            == 200
        )
    ids = []
    for n in range(1, 6):
        answer = session.post(
            f"{base}/actions/{'one' if n % 2 else 'two'}",
            params={"blocking": "true"},
            json={"n": n, "exit": n == 5},
            timeout=60,
        )
        ids.append(answer.json()["activationId"])
    listed = session.get(f"{base}/activations", params={"name": "one", "limit": 0}, timeout=10).json()
    assert [a["activationId"] for a in listed] == [ids[4], ids[2], ids[0]]  # ended only, newest first
    assert [a["statusCode"] for a in listed] == [2, 0, 0] and "response" not in listed[0]
    pages = [
        session.get(f"{base}/activations", params={"limit": 2, "skip": skip}, timeout=10).json() for skip in (0, 2, 4)
    ]
    assert [a["activationId"] for page in pages for a in page] == ids[::-1]
    since = listed[1]["start"]
    assert {
        a["activationId"] for a in session.get(f"{base}/activations", params={"since": since}, timeout=10).json()
    } == {ids[2], ids[3], ids[4]}
    assert {
        a["activationId"] for a in session.get(f"{base}/activations", params={"upto": since}, timeout=10).json()
    } == {ids[0], ids[1], ids[2]}
    assert session.get(f"{base}/activations", params={"count": "true"}, timeout=10).json() == {"activations": 5}
    full = session.get(f"{base}/activations", params={"docs": "true", "limit": 1}, timeout=10).json()[0]
    assert (
        full["response"]["status"] == "action developer error" and full["response"]["result"]["error"] == ABNORMAL_RUN
    )
    assert session.get(f"{base}/activations", params={"limit": 201}, timeout=10).status_code == 400
    assert session.get(f"{base}/activations", params={"skip": -1}, timeout=10).status_code == 400
    running = session.post(f"{base}/actions/one", params={"blocking": "false"}, json={"n": 0, "sleep": 1}, timeout=10)
    record_url = f"{base}/activations/{running.json()['activationId']}"
    assert session.get(record_url, timeout=10).status_code == 404  # no record while it runs
    while session.get(record_url, timeout=10).status_code == 404:
        time.sleep(0.1)
    assert session.get(record_url, timeout=10).json()["response"]["result"] == {"n": 0}
    session.close()
