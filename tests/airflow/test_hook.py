"""PyWrenHook: connection layout, embedded default, executors, job references, connection test, masking."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from airflow_pywren.executor.errors import PyWrenConfigError, PyWrenError
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.jobs import job_reference
from airflow_pywren.hooks.connection import config_from_connection, kubernetes_settings, secret_values
from tests.airflow.conftest import CONN_ENV, AirflowHome, connection_json

pytestmark = pytest.mark.airflow

# The calls must not import this module (it imports the test home): its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_kubernetes_and_code_engine_form_fields_map_to_their_sections() -> None:
    extra = {
        "compute_backend": "k8s",
        "k8s_namespace": "batch",
        "k8s_kubeconfig": "/etc/pywren/kubeconfig",
        "k8s_context": "prod",
        "k8s_in_cluster": "false",
        "k8s_service_account": "pywren-runner",
        "k8s_image_pull_secret": "regcred",
        "k8s_parallelism": "20",
        "k8s_calls_per_pod": 5,
        "ce_region": "eu-de",
        "ce_project_id": "c0ffee",
        "ce_api_key": "ce-secret",
        "ce_image_secret": "icr",
    }
    config = config_from_connection(host=None, login=None, password=None, extra=extra)
    assert config["pywren"] == {"compute_backend": "k8s"}
    assert config["k8s"] == {
        "namespace": "batch",
        "kubeconfig": "/etc/pywren/kubeconfig",
        "context": "prod",
        "in_cluster": False,
        "service_account": "pywren-runner",
        "image_pull_secret": "regcred",
        "parallelism": 20,
        "calls_per_pod": 5,
    }
    assert config["code_engine"] == {
        "region": "eu-de",
        "project_id": "c0ffee",
        "iam_api_key": "ce-secret",
        "image_secret": "icr",
    }
    assert "ce-secret" in secret_values(config)
    with pytest.raises(PyWrenConfigError, match=r"'Calls per pod' \(k8s_calls_per_pod\) must be a whole number"):
        config_from_connection(host=None, login=None, password=None, extra={"k8s_calls_per_pod": "ten"})


def test_connection_fields_map_to_config_sections() -> None:
    config = config_from_connection(
        host="us-south.functions.cloud.ibm.com",
        login="my_namespace",
        password="uuid:key",
        extra={
            "config": {
                "pywren": {"runtime_memory": 512},
                "ibm_cos": {"bucket": "from-config", "storage_prefix": "jobs"},
            },
            "compute_backend": "ibm_cf",
            "storage_backend": "ibm_cos",
            "cos_bucket": "from-field",  # a form field wins over extra.config
            "extra__pywren__cos_endpoint": "http://127.0.0.1:9000",  # legacy prefixed form key
            "cos_access_key_id": "AKID",
            "cos_secret_access_key": "secret",
            "rabbitmq_monitor": "true",
            "amqp_url": "",  # empty form fields are ignored
        },
    )
    assert config == {
        "pywren": {
            "runtime_memory": 512,
            "compute_backend": "ibm_cf",
            "storage_backend": "ibm_cos",
            "rabbitmq_monitor": True,
        },
        "ibm_cos": {
            "bucket": "from-field",
            "storage_prefix": "jobs",
            "endpoint": "http://127.0.0.1:9000",
            "access_key_id": "AKID",
            "secret_access_key": "secret",
        },
        "ibm_cf": {
            "endpoint": "https://us-south.functions.cloud.ibm.com",
            "namespace": "my_namespace",
            "api_key": "uuid:key",
        },
    }
    assert (
        config_from_connection("http://127.0.0.1:3233", None, None, {})["ibm_cf"]["endpoint"] == "http://127.0.0.1:3233"
    )
    assert config_from_connection(None, None, None, {"config": json.dumps({"pywren": {"runtime": "img"}})}) == {
        "pywren": {"runtime": "img"}
    }


def test_kubernetes_connection_becomes_k8s_settings_whose_credentials_are_masked() -> None:
    """A kubernetes connection's kube_config (JSON text, prefixed keys) becomes k8s settings; the masker gets
    every credential in it."""
    kubeconfig = {
        "apiVersion": "v1",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1"}}],
        "users": [
            {"name": "bot", "user": {"token": "K8s-t0ken-0ne"}},
            {
                "name": "oidc",
                "user": {
                    "client-certificate-data": "Q0VSVA==",
                    "client-key-data": "S2V5LWRhdGE=",
                    "auth-provider": {
                        "name": "oidc",
                        "config": {"refresh-token": "Refr3sh-Tw0", "idp-issuer-url": "x"},
                    },
                },
            },
        ],
    }
    settings = kubernetes_settings(
        "kubernetes",
        {
            "extra__kubernetes__kube_config": json.dumps(kubeconfig),
            "namespace": "batch",
            "in_cluster": "false",
            "cluster_context": "prod",
        },
    )
    assert settings == {"kubeconfig_dict": kubeconfig, "namespace": "batch", "in_cluster": False, "context": "prod"}
    assert sorted(secret_values({"k8s": settings})) == ["K8s-t0ken-0ne", "Refr3sh-Tw0", "S2V5LWRhdGE="]
    with pytest.raises(PyWrenConfigError, match="must be of type 'kubernetes'"):
        kubernetes_settings("http", {})
    by_path = kubernetes_settings("kubernetes", {"kube_config_path": "/etc/kube/config", "disable_verify_ssl": "true"})
    assert by_path == {"kubeconfig": "/etc/kube/config", "verify_tls": False}
    assert kubernetes_settings("kubernetes", {"extra__kubernetes__disable_verify_ssl": False}) == {}


def test_localhost_form_fields_and_errors_named_by_form_labels() -> None:
    from airflow_pywren.hooks.connection import with_form_labels

    assert config_from_connection(
        None, None, None, {"localhost_storage_dir": "/data/pywren", "localhost_workers": "6"}
    ) == {"localhost": {"storage_dir": "/data/pywren", "workers": 6}}
    assert with_form_labels("compute_backend 'ibm_cf' needs 'ibm_cf.api_key' ('uuid:key') or 'ibm_cf.iam_api_key'") == (
        "Compute backend 'ibm_cf' needs 'OpenWhisk API key (uuid:key)' (ibm_cf.api_key) ('uuid:key') or "
        "'OpenWhisk IAM API key' (ibm_cf.iam_api_key)"
    )
    assert with_form_labels("'localhost.workers' must be 1 or more, got 0") == (
        "'Local workers' (localhost.workers) must be 1 or more, got 0"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"cos_buckt": "b"}, "unknown key 'cos_buckt' in the extra of a pywren connection; did you mean 'cos_bucket'?"),
        (
            {"config": {"ibm_coss": {}}},
            "unknown section 'ibm_coss' in connection extra 'config'; did you mean 'ibm_cos'?",
        ),
        ({"config": ["pywren"]}, "connection extra 'config' must be an object of sections"),
        ({"config": "{broken"}, "connection extra 'config' is not valid JSON"),
        (
            {"rabbitmq_monitor": "maybe"},
            "'Monitor with RabbitMQ' (rabbitmq_monitor) must be true or false, got 'maybe'",
        ),
        ({"localhost_workers": "four"}, "'Local workers' (localhost_workers) must be a whole number, got 'four'"),
    ],
)
def test_bad_connection_extra_is_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(PyWrenConfigError, match=re.escape(message)):
        config_from_connection(None, None, None, extra)


def test_config_from_env_connection_and_executors(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], capfd: pytest.CaptureFixture
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    hook = PyWrenHook()
    assert hook.get_config() == pywren_conn
    assert (
        "connection 'pywren_default': compute localhost, storage localhost, monitor storage" in capfd.readouterr().out
    )
    with hook.get_conn(executor_id="afixedid") as executor:
        assert isinstance(executor, FunctionExecutor)
        assert executor.executor_id == "afixedid"
        assert (
            executor.storage.location() == f"file://{Path(pywren_conn['localhost']['storage_dir'])}/pywren/pywren.jobs"
        )
        assert executor.config["pywren"]["rabbitmq_monitor"] is False
    with hook.get_conn(runtime="my-image", runtime_memory=1024) as executor:
        assert (executor.config["pywren"]["runtime"], executor.config["pywren"]["runtime_memory"]) == ("my-image", 1024)
    # rabbitmq_monitor=True needs a broker URL: the connection has none, and the error says so
    with pytest.raises(PyWrenConfigError, match="rabbitmq_monitor=True needs 'rabbitmq.amqp_url'"):
        hook.get_conn(rabbitmq_monitor=True)


def test_missing_connection_uses_the_embedded_default(
    airflow_home: AirflowHome, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    monkeypatch.delenv(CONN_ENV, raising=False)
    hook = PyWrenHook(pywren_conn_id="pywren_not_defined")
    assert hook.get_config() == {}
    assert (
        "connection 'pywren_not_defined' is not defined: using the embedded default configuration"
        in capfd.readouterr().out
    )
    with hook.get_conn() as executor:  # HOME is the test's tmp dir
        assert executor.storage.location() == f"file://{tmp_path / 'home' / '.pywren' / 'storage'}/pywren/pywren.jobs"
        assert executor.compute.name == "localhost"


def test_wrong_connection_type_or_config_key_fails_before_any_executor(
    airflow_home: AirflowHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_HTTP", json.dumps({"conn_type": "http", "host": "example.com"}))
    with pytest.raises(PyWrenConfigError, match="has type 'http'; PyWren needs a connection of type 'pywren'"):
        PyWrenHook("pywren_http").get_config()
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_TYPO", connection_json({"pywren": {"storage_backnd": "localhost"}}))
    with pytest.raises(
        PyWrenConfigError, match="unknown key 'storage_backnd' in section 'pywren'.*did you mean 'storage_backend'"
    ):
        PyWrenHook("pywren_typo").get_config()
    monkeypatch.setenv("AIRFLOW_CONN_PYWREN_COS", connection_json(None, storage_backend="ibm_cos"))
    with pytest.raises(
        PyWrenConfigError,
        match=r"connection 'pywren_cos': Storage backend 'ibm_cos' needs "
        r"'COS endpoint' \(ibm_cos.endpoint\)",
    ):
        PyWrenHook("pywren_cos").get_config()


def test_test_connection_checks_storage(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    ok, message = PyWrenHook().test_connection()
    assert ok, message
    assert "is writable and readable" in message
    storage = Path(pywren_conn["localhost"]["storage_dir"]) / "pywren" / "pywren.jobs"
    assert not [p for p in storage.glob(".connection-test-*") if any(p.iterdir())]  # the probe was removed

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PYWREN_BROKEN", connection_json({"localhost": {"storage_dir": str(blocker / "sub")}})
    )
    ok, message = PyWrenHook("pywren_broken").test_connection()
    assert not ok
    assert str(blocker) in message


def test_watch_and_get_results_read_jobs_by_reference(
    airflow_home: AirflowHome, pywren_conn: dict[str, Any], tmp_path: Path
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook

    hook = PyWrenHook()
    with hook.get_conn() as executor:
        ref = job_reference(executor, "map", executor.map(_inverse, [1, 2, 4]))
        failing = job_reference(executor, "map", executor.map(_inverse, [1, 0]))
    assert hook.get_results(ref) == [1.0, 0.5, 0.25]
    watcher = hook.watch(failing)
    try:
        progress = watcher.wait(timeout=60)
        assert (progress.done, progress.failed, progress.errors[0]["type"]) == (2, 1, "ZeroDivisionError")
    finally:
        watcher.executor.close()
    with pytest.raises(ZeroDivisionError):
        hook.get_results(failing)
    with pytest.raises(PyWrenError, match="expected the job reference a PyWren operator pushes to XCom"):
        hook.watch({"executor_id": "x"})
    # a reference can only be read with the storage it was written to
    other = {**ref, "location": f"file://{tmp_path}/elsewhere/pywren.jobs"}
    with pytest.raises(
        PyWrenConfigError, match=r"lives in file://.*elsewhere.*read it with the connection that submitted it"
    ):
        hook.watch(other)


def test_async_helpers_run_off_the_event_loop(airflow_home: AirflowHome, pywren_conn: dict[str, Any]) -> None:
    import threading

    from airflow_pywren.hooks.pywren import PyWrenHook

    hook = PyWrenHook()
    with hook.get_conn() as executor:
        ref = job_reference(executor, "call_async", [executor.call_async(_inverse, 8)])
    loop_thread: list[int] = []

    async def main() -> tuple[dict[str, Any], list[Any]]:
        loop_thread.append(threading.get_ident())
        config = await hook.aget_config()
        watcher = await hook.awatch(ref)
        try:
            progress = await asyncio.to_thread(watcher.wait, 60)
            assert progress.finished
            return config, watcher.results()
        finally:
            watcher.executor.close()

    config, results = asyncio.run(main())
    assert config == pywren_conn and results == [0.125]


def _inverse(x: float) -> float:
    return 1 / x


def test_secrets_are_masked_in_task_logs(
    airflow_home: AirflowHome,
    pywren_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    secrets = {
        "password": "uuid:Pw-5ecret-0ne",
        "cos_secret_access_key": "Cos-5ecret-Tw0",
        "broker": "Amqp-5ecret-Thr33",
    }
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "pywren",
                "password": secrets["password"],
                "extra": {
                    "config": pywren_conn,
                    "cos_secret_access_key": secrets["cos_secret_access_key"],
                    "amqp_url": f"amqp://user:{secrets['broker']}@127.0.0.1:5672/",
                },
            }
        ),
    )
    result = airflow_home.write_and_run(
        "hook_masking",
        f"""
        import logging

        @dag(dag_id="hook_masking", schedule=None, start_date=START, catchup=False)
        def masking():
            @task
            def leak():
                config = PyWrenHook().get_config()
                log = logging.getLogger("airflow.task")
                log.info("api key %s", config["ibm_cf"]["api_key"])
                log.info("cos secret %s", config["ibm_cos"]["secret_access_key"])
                log.info("broker password %s", {secrets["broker"]!r})

            leak()

        masking()
    """,
        header=True,
    )
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    assert "api key ***" in out and "cos secret ***" in out and "broker password ***" in out
    for secret in secrets.values():
        assert secret not in out
