"""The k8s backend against the Kubernetes-API test server: Jobs, pods running the real handler, labels, cleanup."""

from __future__ import annotations

from tests.conftest import merge_config


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
