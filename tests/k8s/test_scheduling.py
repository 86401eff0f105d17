"""Jobs whose pods never reach a node fail their calls with the reason; the pods meet Pod Security's restricted level."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.executor.compute.k8s import RBAC_RULES
from airflow_pywren.executor.errors import ActivationLostError
from tests.conftest import merge_config
from tests.k8s import calls
from tests.services.kubernetes import KubernetesTestServer

pytestmark = pytest.mark.timeout(180)
QUOTA = "exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10"


def outcomes(pw, futures):
    pw.wait(futures)
    return [f.exception() or f.result() for f in futures]


def in_namespace(
    server: KubernetesTestServer, config: dict[str, Any], namespace: str, path: Path, token: str | None = None
) -> dict[str, Any]:
    """``config`` moved to ``namespace`` (its own kubeconfig, optionally with a token of limited rights)."""
    kubeconfig = server.write_kubeconfig(path, namespace, token)
    return merge_config(config, {"k8s": {"namespace": namespace, "kubeconfig": str(kubeconfig)}})


def test_pods_run_in_a_namespace_enforcing_the_restricted_pod_security_level(server, k8s_config, executors, tmp_path):
    namespace = server.create_namespace(pod_security="restricted")
    config = in_namespace(server, merge_config(k8s_config, {"k8s": {"start_timeout": 5}}), namespace, tmp_path / "kc")
    pw = executors(config)
    assert outcomes(pw, pw.map(calls.square, range(4))) == [0, 1, 4, 9]
    (pod, *_) = server.pods_of(namespace)
    security = pod.obj["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_job_whose_pods_are_refused_fails_its_calls_quoting_the_event_and_is_deleted(
    server, k8s_config, executors, tmp_path
):
    namespace = server.create_namespace(refuse_pods=QUOTA)
    config = in_namespace(server, merge_config(k8s_config, {"k8s": {"start_timeout": 1}}), namespace, tmp_path / "kc")
    pw = executors(config)
    results = outcomes(pw, pw.map(calls.square, range(4)))
    assert all(isinstance(r, ActivationLostError) for r in results), results
    assert "created no pod (FailedCreate: Error creating: pods" in str(results[0]) and QUOTA in str(results[0])
    assert "'k8s.start_timeout' = 1 s" in str(results[3])
    assert not server.jobs_in(namespace)


def test_refused_pods_without_access_to_events_name_where_to_look(server, k8s_config, executors, tmp_path):
    """The documented Role has no events: the reason says how to see them."""
    namespace = server.create_namespace(refuse_pods=QUOTA)
    token = server.add_token({(group, resource, verb) for group, resource, verbs in RBAC_RULES for verb in verbs})
    config = in_namespace(
        server, merge_config(k8s_config, {"k8s": {"start_timeout": 1}}), namespace, tmp_path / "kc", token
    )
    pw = executors(config)
    (result,) = outcomes(pw, pw.map(calls.square, [1]))
    assert isinstance(result, ActivationLostError)
    assert "the Job created no pod" in str(result) and "kubectl describe job" in str(result)
    assert not server.jobs_in(namespace)


def test_unschedulable_job_fails_its_calls_naming_the_node_selector(server, namespace, k8s_config, executors):
    config = merge_config(k8s_config, {"k8s": {"start_timeout": 1, "node_selector": {"pool": "gpu"}}})
    pw = executors(config)
    results = outcomes(pw, pw.map(calls.square, range(5), runtime_memory=512))
    assert all(isinstance(r, ActivationLostError) for r in results), results
    reason = str(results[4])
    assert "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector" in reason
    assert "'k8s.node_selector' ({'pool': 'gpu'})" in reason and "requesting 512Mi memory" in reason
    assert not server.jobs_in(namespace) and not server.pods_of(namespace)


def test_pods_waiting_for_room_while_others_of_the_job_run_are_not_failed(server, namespace, k8s_config, executors):
    """The node runs 6 pods at once: 2 of the 8 wait longer than start_timeout, and still run."""
    assert server.wait_idle()
    config = merge_config(k8s_config, {"k8s": {"start_timeout": 1, "calls_per_pod": 1}})
    pw = executors(config)
    assert outcomes(pw, pw.map(calls.sleeps, [3] * 8)) == [3] * 8
    assert len(server.pods_of(namespace)) == 8


def test_job_whose_pods_wait_for_room_ends_by_itself_when_no_client_watches(server, namespace, k8s_config, executors):
    """Kubernetes ends the Job at its own deadline (waves x pod deadline + start_timeout), client or not."""
    config = merge_config(
        k8s_config,
        {"k8s": {"start_timeout": 1, "node_selector": {"pool": "gpu"}, "calls_per_pod": 1, "parallelism": 2}},
    )
    pw = executors(merge_config(config, {"k8s": {"deadline_margin": 0}}))
    futures = pw.map(calls.square, range(4), timeout=1)  # 2 waves of 2 pods: Job deadline 2 x 1 + 1 s
    job = server.jobs_in(namespace)[0]
    assert job["spec"]["activeDeadlineSeconds"] == 3
    pw.close()  # the client goes away: nothing checks the Job from here on
    deadline = time.time() + 60
    while time.time() < deadline and not server.jobs_in(namespace)[0]["status"].get("conditions"):
        time.sleep(0.1)
    (condition,) = server.jobs_in(namespace)[0]["status"]["conditions"]
    assert (condition["type"], condition["reason"]) == ("Failed", "DeadlineExceeded")
    assert not server.pods_of(namespace)  # its waiting pods are gone too
    observer = executors(config)
    results = outcomes(observer, observer.job_futures(futures[0].job_id, executor_id=pw.executor_id))
    assert all(isinstance(r, ActivationLostError) for r in results), results
    assert "activeDeadlineSeconds of 3 s" in str(results[3]) and "'k8s.start_timeout'" in str(results[3])
