"""Calls of a remote-invoked map are checked for lost activations like calls the client invoked.

The remote invoker stores the calls' activation ids, the client stores the invoker's, and a
call that the invoker never invoked (it never ran, or died first) is failed naming the
invoker's activation. Every call here has a 600 s timeout: were a loss only noticed after
timeout plus ``pywren.lost_call_grace`` (or never), the module's pytest timeout would fail
the test first.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import keys, lost_calls
from airflow_pywren.executor.errors import ActivationLostError
from tests.conftest import merge_config
from tests.openwhisk.calls import LONG, double, nap_and_double, tenfold_but_three_exits
from tests.services.openwhisk import ABNORMAL_RUN

pytestmark = pytest.mark.timeout(120)

PROVISION_ERROR = "Failed to provision resources to run the action."


def remote(config: dict[str, Any], **ibm_cf: Any) -> dict[str, Any]:
    """The remote invoker for maps of 4 calls or more, checking for lost activations every 0.2 s."""
    return merge_config(
        config,
        {"ibm_cf": {"remote_invoker": True, "remote_invoker_threshold": 4, "lost_check_interval": 0.2, **ibm_cf}},
    )


@pytest.fixture
def config(any_storage_config: dict[str, Any]) -> dict[str, Any]:
    """ibm_cf on a fresh namespace with either storage (the invoker writes through the payload's)."""
    return any_storage_config


def invocations(server, namespace: str) -> tuple[str, dict[str, str]]:
    """The invoker's activation id, and call id -> activation id of the calls it invoked (server records)."""
    records = server.invocations_of(namespace)
    invoker = [r["activation_id"] for r in records if "invoke_batch" in r["payload"]]
    assert len(invoker) == 1
    calls = {r["payload"]["call_id"]: r["activation_id"] for r in records if "remote-invoker" in r["user_agent"]}
    return invoker[0], calls


def stored_activations(pw: pywren.FunctionExecutor, job_id: str) -> dict[str, str]:
    key = keys.job_key(pw.storage.prefix, pw.executor_id, job_id, keys.ACTIVATIONS)
    return json.loads(pw.storage.get(key))


# ------------------------------------------------------------------ calls the invoker started
def test_a_remote_invoked_call_that_exits_fails_promptly_with_its_activation_id(server, namespace, config, executors):
    pw = executors(remote(config))
    futures = pw.map(tenfold_but_three_exits, range(6), timeout=LONG)
    with pytest.raises(ActivationLostError) as raised:
        pw.get_result(futures)
    message = str(raised.value)
    _, invoked = invocations(server, namespace)
    lost = futures[3]
    assert lost.activation_id == invoked[lost.call_id] and lost.activation_id in message
    assert f"call {lost.call_id} of job {lost.job_id}" in message
    assert f"status 'action developer error': {ABNORMAL_RUN}" in message
    assert [f.status for f in futures] == ["success"] * 3 + ["error"] + ["success"] * 2
    assert [f.result() for f in futures if f is not lost] == [0, 10, 20, 40, 50]
    assert stored_activations(pw, lost.job_id) == invoked == {f.call_id: f.activation_id for f in futures}

    other = executors(config)  # another process attaching by ids knows every activation id and reads the verdict
    attached = other.job_futures(lost.job_id, executor_id=pw.executor_id)
    assert {f.call_id: f.activation_id for f in attached} == invoked
    other.wait(attached)
    assert str(attached[3].exception()) == message


def test_a_remote_invoked_call_that_never_ran_fails_with_the_platform_error(server, namespace, executors, ow_config):
    pw = executors(remote(ow_config))
    server.invoke_delay = 0.3  # each invocation answers late: the test sees the invoker start before its first call
    futures = pw.map(double, range(5), timeout=LONG)
    invoker_id, _ = invocations(server, namespace)
    while server.activation(invoker_id).start is None:
        time.sleep(0.005)
    server.fail_activations(1, namespace=namespace)  # the first call activation to run: it never starts
    done, not_done = pw.wait(futures)
    assert not not_done
    _, invoked = invocations(server, namespace)
    lost = [f for f in futures if f.status == "error"]
    assert len(lost) == 1 and lost[0].worker_pid is None  # the handler never ran
    assert server.activation(invoked[lost[0].call_id]).record()["response"]["status"] == "whisk internal error"
    error = lost[0].exception()
    assert isinstance(error, ActivationLostError) and invoked[lost[0].call_id] in str(error)
    assert f"status 'whisk internal error': {PROVISION_ERROR}" in str(error)
    assert sorted(f.result() for f in futures if f is not lost[0]) == sorted(
        2 * int(f.call_id) for f in futures if f is not lost[0]
    )


def test_a_remote_invoked_map_has_no_false_losses(server, namespace, ow_config, executors, monkeypatch):
    """The invoker ends while most of its calls are still queued: they are known by id, never failed."""
    monkeypatch.setattr(lost_calls, "CHECK_SHARE", 1.0)  # no client-side spacing of checks either
    pw = executors(remote(ow_config, lost_check_interval=0))  # check on every poll
    futures = pw.map(nap_and_double, range(30), timeout=LONG)
    assert pw.get_result(futures) == [2 * i for i in range(30)]
    invoker_id, invoked = invocations(server, namespace)
    assert server.activation(invoker_id).record()["response"]["result"]["invoked"] == 30
    assert stored_activations(pw, futures[0].job_id) == invoked
    assert pw.compute.lost_finder.checks >= 3


# ------------------------------------------------------------------ the invoker itself
def test_a_remote_invoker_that_never_ran_fails_every_call_naming_it(server, namespace, config, executors):
    submitter = executors(remote(config))
    server.fail_activations(1, namespace=namespace)  # the invoker's activation: OpenWhisk cannot run it
    futures = submitter.map(double, range(5), timeout=LONG)  # nobody waits here
    invoker_id, invoked = invocations(server, namespace)
    assert invoked == {}

    watcher = executors(config)  # a process attaching by ids finds it itself
    attached = watcher.job_futures(futures[0].job_id, executor_id=submitter.executor_id)
    done, not_done = watcher.wait(attached)
    assert not not_done and all(f.status == "error" for f in attached)
    for future in attached:
        error = future.exception()
        assert isinstance(error, ActivationLostError)
        message = str(error)
        assert f"call {future.call_id} of job {future.job_id} was never invoked" in message
        assert f"remote invoker activation {invoker_id}" in message
        assert f"status 'whisk internal error': {PROVISION_ERROR}" in message
    with pytest.raises(ActivationLostError, match=f"remote invoker activation {invoker_id}"):
        submitter.get_result(futures)  # and the submitter reads the same verdicts
    assert [str(f.exception()) for f in futures] == [str(f.exception()) for f in attached]


def test_a_remote_invoker_killed_at_its_time_limit_fails_the_calls_it_did_not_invoke(
    server, namespace, ow_config, executors
):
    # OpenWhisk throttles the invoker (429s, retried with backoff) until its action's 1 s time limit kills it
    server.inject(429, 10_000, namespace, user_agent="remote-invoker")
    pw = executors(remote(ow_config, timeout=1, invoke_retries=8))
    futures = pw.map(double, range(6), timeout=LONG)
    watcher = executors(ow_config)
    attached = watcher.job_futures(futures[0].job_id, executor_id=pw.executor_id)
    with pytest.raises(ActivationLostError) as raised:
        pw.get_result(futures)
    invoker_id, invoked = invocations(server, namespace)
    assert invoked == {} and all(f.status == "error" for f in futures)
    message = str(raised.value)
    assert f"call {futures[0].call_id} of job {futures[0].job_id} was never invoked" in message
    assert f"remote invoker activation {invoker_id}" in message
    assert "The action exceeded its time limits of 1000 milliseconds." in message
    watcher.wait(attached)
    assert [str(f.exception()) for f in attached] == [str(f.exception()) for f in futures]


def always_exits(x):
    os._exit(3)


def test_every_remote_invoked_call_lost_in_the_check_that_finds_the_invoker_ended(server, namespace, config, executors):
    """One check finds the invoker and all of its calls ended: each call fails with its own activation's reason."""
    pw = executors(remote(config, lost_check_interval=2))  # the second check comes after everything ended
    futures = pw.map(always_exits, range(4), timeout=LONG)
    done, not_done = pw.wait(futures)
    assert not not_done
    for future in futures:
        error = future.exception()
        assert isinstance(error, ActivationLostError)
        assert future.activation_id in str(error) and ABNORMAL_RUN in str(error)
