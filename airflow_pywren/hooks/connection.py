"""The ``pywren`` connection: which form fields it has and how they become executor config.

This module does not import Airflow, so that provider metadata can be built from it cheaply.

Layout of a ``pywren`` connection (later rows win)::

    extra["config"]           a JSON object of executor config sections, merged section by section
                              over the embedded default, e.g. {"ibm_cos": {"bucket": "b"}}
    extra[<field>]            the form fields of FIELDS below (e.g. "cos_bucket" -> ibm_cos.bucket)
    extra["kubernetes_conn_id"]  an Airflow connection of type kubernetes whose credentials the k8s
                              backend uses (see kubernetes_settings)
    host                      ibm_cf.endpoint   (OpenWhisk API host; https:// is added if no scheme)
    login                     ibm_cf.namespace  (OpenWhisk namespace)
    password                  ibm_cf.api_key    (OpenWhisk key "uuid:key")

Secrets belong in the password or in the sensitive fields (SENSITIVE_KEYS); they are
registered with Airflow's secrets masker when the connection is read.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_pywren.executor import compute, storage
from airflow_pywren.executor.config import schema
from airflow_pywren.executor.errors import PyWrenConfigError

CONN_TYPE = "pywren"
CONFIG_FIELD = "config"


@dataclass(frozen=True)
class Field:
    """One form field of the connection, stored under its name in ``extra``."""

    name: str
    section: str
    key: str
    label: str
    description: str
    sensitive: bool = False
    kind: str = "string"  # "string" | "boolean" | "integer"
    choices: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field(
        "compute_backend",
        "pywren",
        "compute_backend",
        "Compute backend",
        "localhost (calls run on the Airflow worker's machine), ibm_cf (OpenWhisk / IBM Cloud Functions), "
        "k8s (Kubernetes Jobs) or code_engine (IBM Cloud Code Engine)",
        choices=tuple(compute.BACKENDS),
    ),
    Field(
        "storage_backend",
        "pywren",
        "storage_backend",
        "Storage backend",
        "localhost (a local directory) or ibm_cos (IBM COS or another S3-compatible store)",
        choices=tuple(storage.BACKENDS),
    ),
    Field(
        "runtime", "pywren", "runtime", "Runtime", "Docker image that runs the calls (OpenWhisk action, pods, job runs)"
    ),
    Field(
        "rabbitmq_monitor",
        "pywren",
        "rabbitmq_monitor",
        "Monitor with RabbitMQ",
        "follow calls through RabbitMQ notices instead of polling storage (needs the RabbitMQ URL)",
        kind="boolean",
    ),
    Field(
        "cos_endpoint",
        "ibm_cos",
        "endpoint",
        "COS endpoint",
        "e.g. https://s3.us-south.cloud-object-storage.appdomain.cloud",
    ),
    Field("cos_bucket", "ibm_cos", "bucket", "COS bucket", "bucket holding job data and results"),
    Field("cos_region", "ibm_cos", "region", "COS region", "region used to sign requests (default us-east-1)"),
    Field("cos_access_key_id", "ibm_cos", "access_key_id", "COS HMAC access key id", "HMAC credentials: key id"),
    Field(
        "cos_secret_access_key",
        "ibm_cos",
        "secret_access_key",
        "COS HMAC secret access key",
        "HMAC credentials: secret",
        sensitive=True,
    ),
    Field(
        "cos_api_key",
        "ibm_cos",
        "api_key",
        "COS IAM API key",
        "IAM API key (instead of HMAC credentials)",
        sensitive=True,
    ),
    Field(
        "cf_iam_api_key",
        "ibm_cf",
        "iam_api_key",
        "OpenWhisk IAM API key",
        "for IAM-based namespaces, instead of the password's 'uuid:key'",
        sensitive=True,
    ),
    Field(
        "kubernetes_conn_id",
        "airflow",
        "kubernetes_conn_id",
        "Kubernetes connection",
        "k8s: an Airflow connection of type kubernetes (cncf.kubernetes provider) whose credentials to use",
    ),
    Field("k8s_namespace", "k8s", "namespace", "Kubernetes namespace", "k8s: namespace of the Jobs (default: default)"),
    Field("k8s_kubeconfig", "k8s", "kubeconfig", "Kubeconfig file", "k8s: path of a kubeconfig file on the workers"),
    Field("k8s_context", "k8s", "context", "Kubeconfig context", "k8s: context of the kubeconfig (default: current)"),
    Field(
        "k8s_in_cluster",
        "k8s",
        "in_cluster",
        "In-cluster credentials",
        "k8s: use the service account of the pod Airflow runs in",
        kind="boolean",
    ),
    Field(
        "k8s_service_account",
        "k8s",
        "service_account",
        "Pod service account",
        "k8s: service account of the pods that run calls (default: none)",
    ),
    Field(
        "k8s_image_pull_secret",
        "k8s",
        "image_pull_secret",
        "Image pull secret",
        "k8s: Secret with the registry credentials of the runtime image",
    ),
    Field(
        "k8s_parallelism",
        "k8s",
        "parallelism",
        "Pods at once",
        "k8s: pods of one Job that run at the same time (default 100)",
        kind="integer",
    ),
    Field(
        "k8s_calls_per_pod",
        "k8s",
        "calls_per_pod",
        "Calls per pod",
        "k8s: calls each pod runs one after another (default 10)",
        kind="integer",
    ),
    Field(
        "ce_region", "code_engine", "region", "Code Engine region", "code_engine: region of the project, e.g. us-south"
    ),
    Field("ce_project_id", "code_engine", "project_id", "Code Engine project id", "code_engine: the project's id"),
    Field(
        "ce_api_key",
        "code_engine",
        "iam_api_key",
        "Code Engine IAM API key",
        "code_engine: IBM Cloud API key",
        sensitive=True,
    ),
    Field(
        "ce_image_secret",
        "code_engine",
        "image_secret",
        "Code Engine registry secret",
        "code_engine: registry access secret of the runtime image",
    ),
    Field("amqp_url", "rabbitmq", "amqp_url", "RabbitMQ URL", "amqp://user:password@host:5672/vhost", sensitive=True),
    Field(
        "signing_key",
        "pywren",
        "signing_key",
        "Signing key",
        "secret that signs the pickles in storage; every process that reads this storage needs the same key",
        sensitive=True,
    ),
    Field(
        "localhost_storage_dir",
        "localhost",
        "storage_dir",
        "Local storage directory",
        "where localhost storage keeps jobs and results (default ~/.pywren/storage)",
    ),
    Field(
        "localhost_workers",
        "localhost",
        "workers",
        "Local workers",
        "worker processes of the localhost compute backend (default: the CPU count)",
        kind="integer",
    ),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}

# Connection attributes mapped to config keys.
HOST_KEY, LOGIN_KEY, PASSWORD_KEY = ("ibm_cf", "endpoint"), ("ibm_cf", "namespace"), ("ibm_cf", "api_key")

# Config keys whose values are secrets, wherever they come from.
SENSITIVE_KEYS = frozenset(
    {
        ("ibm_cos", "secret_access_key"),
        ("ibm_cos", "api_key"),
        ("ibm_cf", "api_key"),
        ("ibm_cf", "iam_api_key"),
        ("rabbitmq", "amqp_url"),
        ("code_engine", "iam_api_key"),
        ("pywren", "signing_key"),
        ("pywren", "previous_signing_keys"),
    }
)
LINKED_CONNECTION_FIELDS = frozenset({"kubernetes_conn_id"})
"""Fields naming another Airflow connection: the hook reads them, they are not executor config."""

HIDDEN_FIELDS = ["schema", "port"]
RELABELING = {"host": "OpenWhisk API host", "login": "OpenWhisk namespace", "password": "OpenWhisk API key (uuid:key)"}
PLACEHOLDERS = {
    "host": "https://us-south.functions.cloud.ibm.com (only for compute backend ibm_cf)",
    "login": "namespace, e.g. user@example.com_dev",
    "password": "uuid:key from 'ibmcloud fn property get --auth'",
    "extra": '{"config": {"pywren": {"runtime_memory": 512}, "ibm_cos": {"storage_prefix": "jobs"}}}',
}


def _field_name(raw: str) -> str:
    """Extra keys may carry the legacy form prefix ``extra__pywren__``."""
    prefix = f"extra__{CONN_TYPE}__"
    return raw[len(prefix) :] if raw.startswith(prefix) else raw


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise PyWrenConfigError(f"{_label_of(name)} must be true or false, got {value!r}")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise PyWrenConfigError(f"{_label_of(name)} must be a whole number, got {value!r}")


def _label_of(name: str) -> str:
    field = FIELDS_BY_NAME.get(name)
    return f"'{field.label}' ({name})" if field else f"'{name}'"


def _value(field: Field, value: Any) -> Any:
    if field.kind == "boolean":
        return _as_bool(field.name, value)
    if field.kind == "integer":
        return _as_int(field.name, value)
    return value


def parse_extra(extra: str | dict[str, Any] | None, conn_id: str) -> dict[str, Any]:
    """The connection's ``extra`` as a dict; text that is not a JSON object is an error, never ignored."""
    if extra is None or isinstance(extra, dict):
        return dict(extra or {})
    if not extra.strip():
        return {}
    import json

    try:
        parsed = json.loads(extra)
    except json.JSONDecodeError as exc:
        raise PyWrenConfigError(
            f"the extra of connection {conn_id!r} is not valid JSON ({exc}); fix it to a JSON object such as "
            '{"storage_backend": "ibm_cos"} or empty it'
        ) from None
    if not isinstance(parsed, dict):
        raise PyWrenConfigError(
            f"the extra of connection {conn_id!r} must be a JSON object, got {type(parsed).__name__}"
        )
    return parsed


def config_from_connection(
    host: str | None, login: str | None, password: str | None, extra: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Executor config sections from a connection's fields (see the module docstring for the layout)."""
    extra = dict(extra or {})
    config: dict[str, dict[str, Any]] = {}
    raw_config = extra.pop(CONFIG_FIELD, None)
    if isinstance(raw_config, str) and raw_config.strip():
        import json

        try:
            raw_config = json.loads(raw_config)
        except json.JSONDecodeError as exc:
            raise PyWrenConfigError(f"connection extra 'config' is not valid JSON: {exc}") from None
    if not _empty(raw_config):
        if not isinstance(raw_config, dict) or not all(isinstance(v, dict) or v is None for v in raw_config.values()):
            raise PyWrenConfigError(
                "connection extra 'config' must be an object of sections, e.g. "
                '{"pywren": {"storage_backend": "ibm_cos"}, "ibm_cos": {"bucket": "b"}}'
            )
        sections = schema()
        for section, values in raw_config.items():
            if section not in sections:
                close = difflib.get_close_matches(section, list(sections), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; sections: {', '.join(sections)}"
                raise PyWrenConfigError(f"unknown section '{section}' in connection extra 'config'{hint}")
            config.setdefault(section, {}).update(values or {})
    for raw_name, value in extra.items():
        name = _field_name(raw_name)
        field = FIELDS_BY_NAME.get(name)
        if field is None:
            close = difflib.get_close_matches(name, list(FIELDS_BY_NAME) + [CONFIG_FIELD], n=1)
            hint = (
                f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join([CONFIG_FIELD, *FIELDS_BY_NAME])}"
            )
            raise PyWrenConfigError(f"unknown key '{raw_name}' in the extra of a pywren connection; {hint}")
        if _empty(value) or name in LINKED_CONNECTION_FIELDS:
            continue
        config.setdefault(field.section, {})[field.key] = _value(field, value)
    if host is not None and not _empty(host):
        host = host.strip()
        config.setdefault(HOST_KEY[0], {})[HOST_KEY[1]] = host if "://" in host else f"https://{host}"
    if login is not None and not _empty(login):
        config.setdefault(LOGIN_KEY[0], {})[LOGIN_KEY[1]] = login.strip()
    if not _empty(password):
        config.setdefault(PASSWORD_KEY[0], {})[PASSWORD_KEY[1]] = password
    return config


def kubernetes_settings(conn_type: str | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """``k8s`` settings from an Airflow ``kubernetes`` connection (the cncf.kubernetes provider's fields:
    ``in_cluster``, ``kube_config_path``, ``kube_config`` (JSON or YAML text), ``cluster_context``,
    ``namespace``, ``disable_verify_ssl``; with or without the ``extra__kubernetes__`` prefix)."""
    if conn_type and conn_type != "kubernetes":
        raise PyWrenConfigError(
            f"'kubernetes_conn_id' names a connection of type {conn_type!r}; it must be of type "
            "'kubernetes' (the cncf.kubernetes provider's)"
        )
    fields = {}
    for raw, value in (extra or {}).items():
        fields[raw.removeprefix("extra__kubernetes__")] = value
    settings: dict[str, Any] = {}
    if not _empty(fields.get("kube_config")):
        raw_config = fields["kube_config"]
        if isinstance(raw_config, str):
            import yaml

            try:
                raw_config = yaml.safe_load(raw_config)
            except yaml.YAMLError as exc:
                raise PyWrenConfigError(f"the kubernetes connection's kube_config is not JSON or YAML: {exc}") from None
        if not isinstance(raw_config, dict):
            raise PyWrenConfigError("the kubernetes connection's kube_config must be a kubeconfig object")
        settings["kubeconfig_dict"] = raw_config
    if not _empty(fields.get("kube_config_path")):
        settings["kubeconfig"] = str(fields["kube_config_path"])
    if not _empty(fields.get("in_cluster")):
        settings["in_cluster"] = _as_bool("in_cluster", fields["in_cluster"])
    if not _empty(fields.get("cluster_context")):
        settings["context"] = str(fields["cluster_context"])
    if not _empty(fields.get("namespace")):
        settings["namespace"] = str(fields["namespace"])
    if not _empty(fields.get("disable_verify_ssl")) and _as_bool("disable_verify_ssl", fields["disable_verify_ssl"]):
        settings["verify_tls"] = False
    return settings


def secret_values(config: dict[str, dict[str, Any]]) -> list[str]:
    """The secret strings of a config (and the password inside a RabbitMQ URL), for the log masker."""
    secrets: list[str] = []
    for section, key in SENSITIVE_KEYS:
        value = (config.get(section) or {}).get(key)
        if isinstance(value, list):
            secrets.extend(v for v in value if isinstance(v, str) and v)
        elif isinstance(value, str) and value:
            secrets.append(value)
            if key == "amqp_url":
                password = urlsplit(value).password
                if password:
                    secrets.append(password)
    secrets.extend(kubeconfig_secrets((config.get("k8s") or {}).get("kubeconfig_dict")))
    return secrets


KUBECONFIG_USER_SECRETS = ("token", "password", "client-key-data")
KUBECONFIG_PROVIDER_SECRETS = ("access-token", "refresh-token", "id-token", "client-secret")


def kubeconfig_secrets(kubeconfig: Any) -> list[str]:
    """The credentials in a kubeconfig mapping (a kubernetes connection's ``kube_config``): tokens, passwords,
    client keys, auth-provider tokens and secrets."""
    if not isinstance(kubeconfig, dict):
        return []
    found: list[str] = []
    for entry in kubeconfig.get("users") or []:
        user = (entry.get("user") if isinstance(entry, dict) else None) or {}
        if not isinstance(user, dict):
            continue
        found.extend(str(user[key]) for key in KUBECONFIG_USER_SECRETS if user.get(key))
        provider = (user.get("auth-provider") or {}).get("config") or {}
        if isinstance(provider, dict):
            found.extend(str(provider[key]) for key in KUBECONFIG_PROVIDER_SECRETS if provider.get(key))
    return found


def conn_fields() -> dict[str, dict[str, Any]]:
    """The declarative form (``conn-fields``) Airflow 3.2+ reads from provider info.

    Selects list only real backends (the embedded default first, preselected; no ``null``
    choice). Every other field is optional: its type admits ``null``, else the UI's form marks
    it required and will not save. The plugin keeps nulls out of the JSON editor and of what
    is saved (:mod:`airflow_pywren.ui.connection_form`).
    """
    fields: dict[str, dict[str, Any]] = {}
    for field in FIELDS:
        schema: dict[str, Any] = {"type": [field.kind, "null"]}
        if field.sensitive:
            schema["format"] = "password"
        if field.choices:
            schema["type"] = field.kind
            schema["enum"] = list(field.choices)
            schema["default"] = field.choices[0]  # the embedded default
        fields[field.name] = {"label": field.label, "description": field.description, "schema": schema}
    return fields


_LABELS = {f"{field.section}.{field.key}": field for field in FIELDS}
_LABELS.update(
    {
        f"{HOST_KEY[0]}.{HOST_KEY[1]}": Field("host", *HOST_KEY, RELABELING["host"], ""),
        f"{LOGIN_KEY[0]}.{LOGIN_KEY[1]}": Field("login", *LOGIN_KEY, RELABELING["login"], ""),
        f"{PASSWORD_KEY[0]}.{PASSWORD_KEY[1]}": Field("password", *PASSWORD_KEY, RELABELING["password"], ""),
    }
)


def with_form_labels(message: str) -> str:
    """A configuration error with each setting the form has named by its label: ``'COS bucket' (ibm_cos.bucket)``."""
    for dotted, field in _LABELS.items():
        message = message.replace(f"'{dotted}'", f"'{field.label}' ({dotted})")
    for name in ("compute_backend", "storage_backend"):
        message = message.replace(f"{name} '", f"{FIELDS_BY_NAME[name].label} '")
    return message


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder standard fields (Airflow's ``get_ui_field_behaviour`` shape)."""
    return {"hidden_fields": list(HIDDEN_FIELDS), "relabeling": dict(RELABELING), "placeholders": dict(PLACEHOLDERS)}
