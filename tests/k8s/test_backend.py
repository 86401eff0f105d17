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


def test_a_configured_service_account_runs_the_pods_with_its_token(server, namespace, k8s_config, executors):
    from kubernetes import client, config

    pw = executors(merge_config(k8s_config, {"k8s": {"service_account": "pywren-runner"}}))
    assert pw.get_result(pw.map(square, [3])) == [9]
    api = config.new_client_from_config(k8s_config["k8s"]["kubeconfig"])
    pod_spec = client.BatchV1Api(api).list_namespaced_job(namespace).items[0].spec.template.spec
    assert pod_spec.service_account_name == "pywren-runner"
    assert pod_spec.automount_service_account_token is None  # the account's own setting decides


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
    assert spec.active_deadline_seconds == 1 * (3 * 20 + 30) + 600  # one wave of pods, then k8s.start_timeout
    assert pod_spec.node_selector == {"pool": "batch"} and pod_spec.image_pull_secrets[0].name == "regcred"
    assert pod_spec.automount_service_account_token is False and pod_spec.restart_policy == "Never"
    assert pod_spec.service_account_name is None  # no k8s.service_account: no identity, no token
    assert job.metadata.namespace == namespace and container.image == k8s_config["k8s"]["runtime"]
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


def test_clean_leaves_running_jobs_and_other_executors_jobs(server, namespace, k8s_config, executors):
    mine, other = executors(k8s_config), executors(k8s_config)
    assert mine.get_result(mine.map(square, [1])) == [1] and other.get_result(other.map(square, [2])) == [4]
    running = mine.map(calls.sleeps, [60])
    _wait_for(lambda: sum(bool(j["status"].get("conditions")) for j in server.jobs_in(namespace)) == 2)
    assert mine.compute.clean(mine.executor_id) == 1
    left = {
        (j["metadata"]["labels"]["airflow-pywren/executor-id"], j["metadata"]["labels"]["airflow-pywren/job-id"])
        for j in server.jobs_in(namespace)
    }
    assert left == {(mine.executor_id, running[0].job_id), (other.executor_id, "M000")}
    secrets = {k[1] for k in server.secrets if k[0] == namespace}
    assert {j["metadata"]["name"] for j in server.jobs_in(namespace)} <= secrets  # the running Job keeps its payload
    assert mine.cancel(running) == 1


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


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
    from airflow_pywren.executor.compute.k8s import load_api_client

    assert load_api_client(config["k8s"]).configuration.verify_ssl is True
    assert load_api_client({**config["k8s"], "verify_tls": False}).configuration.verify_ssl is False
    missing = merge_config(k8s_config, {"k8s": {"kubeconfig": str(tmp_path / "nope")}})
    with pytest.raises(PyWrenConfigError, match="could not load Kubernetes credentials"):
        executors(missing)


@pytest.mark.timeout(180)
def test_job_view_shows_a_kubernetes_job_with_its_lost_calls(k8s_config, executors, monkeypatch):
    from airflow_pywren.ui import reader

    monkeypatch.setattr(reader, "MIN_REFRESH_SECONDS", 0.0)
    pw = executors(k8s_config)
    futures = pw.map(calls.exits_at_four, range(6))
    pw.wait(futures)
    view = reader.JobView(
        executors(k8s_config), {"executor_id": pw.executor_id, "kind": "map", "job_ids": [futures[0].job_id]}
    )
    view.refresh()
    summary = view.summary()
    assert (summary["compute_backend"], summary["total"], summary["success"], summary["failed"]) == ("k8s", 6, 4, 2)
    lost = summary["first_errors"]
    assert [row["call_id"] for row in lost] == ["00004", "00005"]
    assert lost[0]["activation_id"] == futures[4].activation_id and lost[0]["activation_id"].endswith("/1")
    assert lost[0]["error"]["type"] == "ActivationLostError" and "exited (exit code 0" in lost[0]["error"]["message"]


def test_in_cluster_credentials_inside_a_pod_without_kubeconfig(server, namespace, tmp_path, monkeypatch):
    """In a pod (service host set, no kubeconfig) the pod's service account is used; a kubeconfig given wins."""
    from kubernetes.config import incluster_config

    from airflow_pywren.executor.compute.k8s import load_api_client

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("pod-t0ken")
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    api = load_api_client({})
    assert api.configuration.host == "https://10.96.0.1:443"
    assert any(str(v).endswith("pod-t0ken") for v in api.configuration.api_key.values())
    api.close()
    api = load_api_client({"kubeconfig": str(server.write_kubeconfig(tmp_path / "kc", namespace))})
    assert api.configuration.host == server.endpoint
    api.close()
    with pytest.raises(PyWrenConfigError, match="could not load Kubernetes credentials"):
        load_api_client({"in_cluster": False})  # no kubeconfig anywhere
