"""Pods that end without their calls' statuses fail exactly those calls, with the pod's reason, in bounded time."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config

from airflow_pywren.executor import errors as pywren
from tests.conftest import merge_config
from tests.k8s import calls


def outcomes(pw, futures):
    """``[value or exception]`` per call, waiting for all (pytest's timeout bounds the wait)."""
    pw.wait(futures)
    return [f.exception() or f.result() for f in futures]


def assert_only_calls_lost(results, lost, match):
    for index, result in enumerate(results):
        if index in lost:
            assert isinstance(result, pywren.ActivationLostError), (index, result)
            assert match in str(result), str(result)
        else:
            assert result == index or not isinstance(result, BaseException), (index, result)


def core_api(k8s_config):
    return client.CoreV1Api(config.new_client_from_config(k8s_config["k8s"]["kubeconfig"]))


@pytest.mark.timeout(180)
def test_pod_that_exits_without_statuses_fails_the_rest_of_its_slice(k8s_config, executors):
    pw = executors(k8s_config)
    futures = pw.map(calls.exits_at_four, range(9))  # index 1 runs calls 3, 4, 5
    results = outcomes(pw, futures)
    assert_only_calls_lost(results, {4, 5}, "exited (exit code 0")
    assert "/1" in str(results[4])


@pytest.mark.timeout(180)
def test_pod_that_crashes_reports_its_exit_code_and_log(k8s_config, executors):
    pw = executors(k8s_config)
    results = outcomes(pw, pw.map(calls.crashes_at_four, range(6)))
    assert_only_calls_lost(results, {4, 5}, "exit code 3")


@pytest.mark.timeout(180)
def test_oom_killed_pod_fails_its_remaining_calls(k8s_config, executors):
    pw = executors(k8s_config)
    results = outcomes(pw, pw.map(calls.hog_at_four, range(6), runtime_memory=256))
    assert_only_calls_lost(results, {4, 5}, "OOMKilled")
    assert "256Mi" in str(results[4]) and "raise runtime_memory" in str(results[4])


@pytest.mark.timeout(180)
def test_deadline_exceeded_fails_the_pod_calls(k8s_config, executors):
    pw = executors(merge_config(k8s_config, {"k8s": {"deadline_margin": 0}}))
    results = outcomes(pw, pw.map(calls.ignores_its_timeout, range(6), timeout=2))
    assert_only_calls_lost(results, {4, 5}, "DeadlineExceeded")
    assert "activeDeadlineSeconds of 6 s" in str(results[4])


@pytest.mark.timeout(180)
def test_image_pull_error_fails_every_call_and_deletes_the_job(server, namespace, k8s_config, executors):
    pw = executors(merge_config(k8s_config, {"k8s": {"runtime": "registry.example/missing/runtime:1"}}))
    results = outcomes(pw, pw.map(calls.square, range(4)))  # bounded by image_pull_timeout (1 s here)
    assert all(isinstance(r, pywren.ActivationLostError) for r in results)
    assert "ImagePullBackOff" in str(results[0]) or "ErrImagePull" in str(results[0])
    assert "registry.example/missing/runtime:1" in str(results[0])
    assert not server.jobs_in(namespace)


@pytest.mark.timeout(180)
def test_evicted_pod_fails_its_calls(server, namespace, k8s_config, executors):
    pw = executors(merge_config(k8s_config, {"k8s": {"calls_per_pod": 2}}))
    futures = pw.map(calls.sleeps, [0, 0, 30, 30])
    pod = next(p for p in _running(server, namespace, index=1))
    server.evict(namespace, pod.name)
    results = outcomes(pw, futures)
    assert results[:2] == [0, 0]
    assert all(isinstance(r, pywren.ActivationLostError) and "evicted" in str(r) for r in results[2:])


@pytest.mark.timeout(180)
def test_deleted_pod_fails_its_calls(server, namespace, k8s_config, executors):
    pw = executors(merge_config(k8s_config, {"k8s": {"calls_per_pod": 2}}))
    futures = pw.map(calls.sleeps, [0, 0, 30, 30])
    pod = next(p for p in _running(server, namespace, index=1))
    core_api(k8s_config).delete_namespaced_pod(pod.name, namespace)
    results = outcomes(pw, futures)
    assert results[:2] == [0, 0]
    assert all(isinstance(r, pywren.ActivationLostError) and "deleted" in str(r) for r in results[2:])


@pytest.mark.timeout(180)
def test_a_job_deleted_outside_the_executor_fails_the_calls_it_had_not_finished(
    server, namespace, k8s_config, executors
):
    pw = executors(merge_config(k8s_config, {"k8s": {"calls_per_pod": 2}}))
    futures = pw.map(calls.sleeps, [0, 0, 60, 60])
    _running(server, namespace, index=1)
    while not all(f.done() for f in futures[:2]):
        pw.wait(futures[:2], timeout=1)  # the first pod's calls finish before the Job goes
    batch = client.BatchV1Api(config.new_client_from_config(k8s_config["k8s"]["kubeconfig"]))
    (job,) = batch.list_namespaced_job(namespace).items
    batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")  # kubectl delete job
    results = outcomes(pw, futures)
    assert results[:2] == [0, 0]
    for lost in results[2:]:
        assert isinstance(lost, pywren.ActivationLostError), lost
        assert f"Kubernetes Job {job.metadata.name} no longer exists" in str(lost), str(lost)


@pytest.mark.timeout(180)
def test_attached_observer_sees_the_same_losses(k8s_config, executors):
    pw = executors(k8s_config)
    futures = pw.map(calls.exits_at_four, range(6))
    observer = executors(k8s_config)
    attached = observer.job_futures(futures[0].job_id, executor_id=pw.executor_id)
    results = outcomes(observer, attached)
    assert_only_calls_lost(results, {4, 5}, "exited")


@pytest.mark.timeout(180)
def test_cancel_deletes_the_job_and_fails_its_calls(server, namespace, k8s_config, executors):
    pw = executors(k8s_config)
    futures = pw.map(calls.sleeps, [60, 60])
    _running(server, namespace, index=0)
    assert pw.cancel(futures) == 1
    assert not server.jobs_in(namespace) and not server.pods_of(namespace)
    results = outcomes(pw, futures)
    assert all(isinstance(r, pywren.CallCancelledError) for r in results)


def _running(server, namespace, index, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pods = [p for p in server.pods_of(namespace) if p.index == index and p.phase == "Running"]
        if pods:
            time.sleep(1.0)  # its first call has started
            return pods
        time.sleep(0.05)
    raise TimeoutError(f"no running pod of index {index}")
