"""The k8s backend against the Kubernetes-API test server: Jobs, pods running the real handler, labels, cleanup."""

from __future__ import annotations

import time

import pytest

from airflow_pywren.executor.compute.k8s import RBAC_RULES
from airflow_pywren.executor.errors import PyWrenConfigError
from tests.conftest import merge_config
from tests.k8s import calls


def square(x):
    return x * x


def test_map_runs_in_indexed_job_pods(server, namespace, k8s_config, executors):
    pw = executors(k8s_config)
    futures = pw.map(square, range(10))
    assert pw.get_result(futures) == [x * x for x in range(10)]
    pods = server.pods_of(namespace)
    assert len(pods) == 4  # ceil(10 / 3)
    assert {p.index for p in pods} == {0, 1, 2, 3}
    assert {f.activation_id for f in futures[:3]} == {futures[0].activation_id}
    requests = server.requests_in(namespace)
    assert requests["POST batch/jobs"] == 1 and requests["POST secrets"] == 1


def test_job_spec_limits_labels_and_secret(server, namespace, k8s_config, executors):
    from kubernetes import client, config

    pw = executors(
        merge_config(
            k8s_config,
            {
                "k8s": {
                    "parallelism": 2,
                    "node_selector": {"pool": "batch"},
                    "image_pull_secret": "regcred",
                    "deadline_margin": 30,
                }
            },
        )
    )
    futures = pw.map(square, range(4), runtime_memory=300, timeout=20)
    assert pw.get_result(futures) == [0, 1, 4, 9]
    api = config.new_client_from_config(k8s_config["k8s"]["kubeconfig"])
    job = client.BatchV1Api(api).list_namespaced_job(namespace).items[0]
    labels = job.metadata.labels
    assert labels["airflow-pywren/executor-id"] == pw.executor_id and labels["airflow-pywren/job-id"] == "M000"
    assert labels["app.kubernetes.io/managed-by"] == "airflow-pywren"
    spec = job.spec
    assert (spec.completion_mode, spec.completions, spec.parallelism, spec.backoff_limit_per_index) == (
        "Indexed",
        2,
        2,
        0,
    )
    pod_spec = spec.template.spec
    container = pod_spec.containers[0]
    assert container.resources.limits == {"memory": "300Mi"} and container.resources.requests["memory"] == "300Mi"
    assert pod_spec.active_deadline_seconds == 3 * 20 + 30
    assert pod_spec.node_selector == {"pool": "batch"} and pod_spec.image_pull_secrets[0].name == "regcred"
    assert pod_spec.automount_service_account_token is False and pod_spec.restart_policy == "Never"
    # storage settings travel in the Secret the Job owns, never in the Job itself
    assert "storage_dir" not in str(job.to_dict())
    secret = client.CoreV1Api(api).read_namespaced_secret(job.metadata.name, namespace)
    assert secret.metadata.owner_references[0].uid == job.metadata.uid
    assert secret.metadata.labels == labels
    api.close()


def test_clean_removes_finished_jobs_and_their_secrets(server, namespace, k8s_config, executors):
    pw = executors(k8s_config)
    assert pw.get_result(pw.map(square, range(4))) == [0, 1, 4, 9]
    deadline = time.time() + 60
    while not all(j["status"].get("conditions") for j in server.jobs_in(namespace)) and time.time() < deadline:
        time.sleep(0.05)  # the pods have written their statuses and are exiting
    pw.clean()
    assert not server.jobs_in(namespace) and not server.pods_of(namespace)
    assert not [k for k in server.secrets if k[0] == namespace]


def test_least_privilege_role_is_enough(server, namespace, k8s_config, executors, tmp_path):
    """A token allowed exactly the documented Role runs, cancels and cleans; one without Secrets is told what to grant."""
    rules = {(group, resource, verb) for group, resource, verbs in RBAC_RULES for verb in verbs}
    token = server.add_token(rules)
    config = merge_config(
        k8s_config, {"k8s": {"kubeconfig": str(server.write_kubeconfig(tmp_path / "kc", namespace, token))}}
    )
    pw = executors(config)
    assert pw.get_result(pw.map(square, [1, 2])) == [1, 4]
    futures = pw.map(calls.sleeps, [60])
    pw.cancel(futures)
    denied = server.add_token(rules - {("", "secrets", "create")})
    pw2 = executors(
        merge_config(
            k8s_config, {"k8s": {"kubeconfig": str(server.write_kubeconfig(tmp_path / "kc2", namespace, denied))}}
        )
    )
    with pytest.raises(PyWrenConfigError, match="may not create Job .* grant the Role in the README"):
        pw2.map(square, [1])


def test_kubeconfig_dict_and_missing_kubeconfig(server, namespace, k8s_config, executors, tmp_path):
    config = merge_config(k8s_config, {"k8s": {"kubeconfig": None, "kubeconfig_dict": server.kubeconfig(namespace)}})
    pw = executors(config)
    assert pw.get_result(pw.map(square, [3])) == [9]
    missing = merge_config(k8s_config, {"k8s": {"kubeconfig": str(tmp_path / "nope")}})
    with pytest.raises(PyWrenConfigError, match="could not load Kubernetes credentials"):
        executors(missing)
