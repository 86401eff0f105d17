"""Provider registration: the entry point's metadata, as Airflow's provider manager reads it."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from airflow_pywren.provider_info import get_provider_info
from airflow_pywren.version import __version__
from tests.airflow.conftest import AirflowHome

pytestmark = pytest.mark.airflow


def test_entry_point_returns_schema_valid_metadata(airflow_home: AirflowHome) -> None:
    import airflow
    import jsonschema

    (entry,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_pywren.")]
    info = entry.load()()
    assert info == get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert (info["package-name"], info["versions"]) == ("airflow-pywren", [__version__])
    assert {
        "name",
        "description",
        "connection-types",
        "task-decorators",
        "extra-links",
        "hooks",
        "operators",
        "sensors",
        "triggers",
    } <= set(info)


def test_listed_modules_and_classes_import(airflow_home: AirflowHome) -> None:
    info = get_provider_info()
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    ]
    assert modules == [
        "airflow_pywren.hooks.pywren",
        "airflow_pywren.operators.pywren",
        "airflow_pywren.sensors.pywren",
        "airflow_pywren.triggers.pywren",
    ]
    for module in modules:
        importlib.import_module(module)
    paths = [
        info["connection-types"][0]["hook-class-name"],
        *info["extra-links"],
        info["task-decorators"][0]["class-name"],
    ]
    for path in paths:
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), path


def test_provider_manager_registers_connection_type_form_link_and_decorator(airflow_home: AirflowHome) -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_pywren.decorators.pywren import pywren_task
    from airflow_pywren.hooks.pywren import PyWrenHook

    manager, runtime = ProvidersManager(), ProvidersManagerTaskRuntime()
    assert manager.providers["airflow-pywren"].version == __version__
    hook_info = runtime.hooks["pywren"]
    assert (hook_info.hook_class_name, hook_info.connection_id_attribute_name, hook_info.hook_name) == (
        "airflow_pywren.hooks.pywren.PyWrenHook",
        "pywren_conn_id",
        "PyWren",
    )
    assert (PyWrenHook.conn_type, PyWrenHook.default_conn_name) == ("pywren", "pywren_default")

    widgets = manager.connection_form_widgets
    fields = {name[len("extra__pywren__") :]: w for name, w in widgets.items() if name.startswith("extra__pywren__")}
    assert set(fields) == {
        "compute_backend",
        "storage_backend",
        "runtime",
        "rabbitmq_monitor",
        "cos_endpoint",
        "cos_bucket",
        "cos_region",
        "cos_access_key_id",
        "cos_secret_access_key",
        "cos_api_key",
        "cf_iam_api_key",
        "amqp_url",
        "kubernetes_conn_id",
        "k8s_namespace",
        "k8s_kubeconfig",
        "k8s_context",
        "k8s_in_cluster",
        "k8s_service_account",
        "k8s_image_pull_secret",
        "k8s_parallelism",
        "k8s_calls_per_pod",
        "ce_region",
        "ce_project_id",
        "ce_api_key",
        "ce_image_secret",
        "signing_key",
        "localhost_storage_dir",
        "localhost_workers",
    }
    assert {n for n, w in fields.items() if w.is_sensitive} == {
        "cos_secret_access_key",
        "cos_api_key",
        "cf_iam_api_key",
        "amqp_url",
        "ce_api_key",
        "signing_key",
    }
    assert fields["compute_backend"].field["schema"]["enum"] == ["localhost", "ibm_cf", "k8s", "code_engine"]
    assert {k: v for k, v in fields["storage_backend"].field["schema"].items() if k != "title"} == {
        "type": "string",
        "enum": ["localhost", "ibm_cos"],
        "default": "localhost",
    }
    assert fields["localhost_workers"].field["schema"]["type"] == ["integer", "null"]  # optional in the form
    assert not [name for name, w in fields.items() if None in w.field["schema"].get("enum", [])]
    assert not [name for name, w in fields.items() if w.field["value"] is None and "enum" in w.field["schema"]]

    behaviour = manager.field_behaviours["pywren"]
    assert behaviour["hidden_fields"] == ["schema", "port"]
    assert behaviour["relabeling"]["password"] == "OpenWhisk API key (uuid:key)"
    assert PyWrenHook.get_ui_field_behaviour()["relabeling"] == behaviour["relabeling"]

    assert "airflow_pywren.links.pywren.PyWrenJobLink" in manager.extra_links_class_names
    assert runtime.taskflow_decorators["pywren"] is pywren_task


def test_task_pywren_resolves_through_the_sdk(airflow_home: AirflowHome) -> None:
    from airflow.sdk import task

    from airflow_pywren.decorators.pywren import pywren_task

    assert task.pywren is pywren_task
