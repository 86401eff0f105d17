"""Layered configuration: defaults, config file, ``PYWREN_CONFIG``, then the ``config`` argument.

The result is a plain ``dict`` of sections (``pywren``, ``localhost``, ``ibm_cf``, ``k8s``,
``code_engine``, ``ibm_cos``, ``rabbitmq``), validated when the executor is created so that a typo or a
missing setting fails before anything is invoked.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_pywren.executor import validation
from airflow_pywren.executor.errors import PyWrenConfigError

Config = dict[str, dict[str, Any]]

COMPUTE_BACKENDS = ("localhost", "ibm_cf", "k8s", "code_engine")
STORAGE_BACKENDS = ("localhost", "ibm_cos")
DEFAULT_CONFIG_FILE = "~/.pywren_config"


@dataclass(frozen=True)
class Setting:
    """One configuration key: its accepted types, default and a short description."""

    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[str, ...] = ()


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


SCHEMA: dict[str, dict[str, Setting]] = {
    "pywren": {
        "compute_backend": Setting((str,), "localhost", "where calls run", COMPUTE_BACKENDS),
        "storage_backend": Setting((str,), "localhost", "where jobs, results and status live", STORAGE_BACKENDS),
        "runtime": Setting((str, type(None)), None, "runtime image (ibm_cf) or label"),
        "runtime_memory": Setting((int,), 256, "memory per call in MB"),
        "runtime_timeout": Setting((int, float), 600, "default timeout per call in seconds"),
        "monitor_interval": Setting((int, float), 0.05, "seconds between storage polls"),
        "rabbitmq_monitor": Setting((bool,), False, "resolve futures from RabbitMQ messages"),
        "log_level": Setting((str, type(None)), None, "logging level of the executor"),
        "max_workers": Setting((int,), 16, "client threads for storage reads"),
        "lost_call_grace": Setting(
            (int, float), 30, "seconds past its timeout after which a running call with no status is failed"
        ),
        "invocation_grace": Setting(
            (int, float),
            60,
            "seconds without news from a process invoking a job's calls after which an attaching "
            "process takes its uninvoked calls for never invoked (an Airflow retry invokes them)",
        ),
        "write_retry_seconds": Setting(
            (int, float),
            30,
            "seconds a call retries a status or result write that storage "
            "refused before it gives up (the client then fails the call with the storage error)",
        ),
        "signing_key": Setting(
            (str, type(None)), None, "secret that signs every pickle in storage (default: the key file)"
        ),
        "previous_signing_keys": Setting((list,), [], "older signing keys still accepted when reading (key rotation)"),
        "signing_key_file": Setting(
            (str,), "~/.pywren/signing.key", "per-user key file used when signing_key is unset (created with mode 0600)"
        ),
    },
    "localhost": {
        "storage_dir": Setting((str,), "~/.pywren/storage", "directory holding localhost storage"),
        "bucket": Setting((str,), "pywren", "bucket (sub-directory) of localhost storage"),
        "storage_prefix": Setting((str,), "pywren.jobs", "key prefix of job data"),
        "data_dir": Setting(
            (str, type(None)),
            None,
            "directory whose sub-directories are the buckets that "
            "'bucket/prefix/' and 'cos://bucket/...' iterdata address (default: storage_dir)",
        ),
        "workers": Setting((int,), _cpu_count(), "concurrent calls on this machine"),
        "runner_dir": Setting((str,), "~/.pywren/runner", "directory of the runner's socket, lock and log"),
        "runner_idle_timeout": Setting((int, float), 600, "seconds an idle runner waits before exiting"),
        "max_extra_workers": Setting(
            (int,),
            32,
            "workers the runner may add while calls wait for calls they "
            "submitted (nested executors), one per waiting call",
        ),
    },
    "ibm_cos": {
        "endpoint": Setting((str, type(None)), None, "COS or S3-compatible endpoint URL"),
        "bucket": Setting((str, type(None)), None, "bucket holding job data"),
        "storage_prefix": Setting((str,), "pywren.jobs", "key prefix of job data"),
        "region": Setting((str,), "us-east-1", "region name used to sign requests"),
        "api_key": Setting((str, type(None)), None, "IAM API key"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "access_key_id": Setting((str, type(None)), None, "HMAC access key id"),
        "secret_access_key": Setting((str, type(None)), None, "HMAC secret access key"),
        "max_attempts": Setting((int,), 8, "attempts per request, with backoff"),
        "connect_timeout": Setting((int, float), 10, "seconds to connect"),
        "read_timeout": Setting((int, float), 60, "seconds to read"),
    },
    "ibm_cf": {
        "endpoint": Setting(
            (str, type(None)), None, "OpenWhisk API host, e.g. https://us-south.functions.cloud.ibm.com"
        ),
        "namespace": Setting((str, type(None)), None, "OpenWhisk namespace"),
        "api_key": Setting((str, type(None)), None, "OpenWhisk key 'uuid:key' (basic auth)"),
        "iam_api_key": Setting((str, type(None)), None, "IAM API key for IAM-based namespaces"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "docker image of the action"),
        "runtime_memory": Setting(
            (int,),
            256,
            "memory of the action 'pywren runtime deploy' creates, in MB "
            "(jobs use pywren.runtime_memory or their runtime_memory argument)",
        ),
        "timeout": Setting((int, float), 600, "action timeout in seconds"),
        "max_concurrency": Setting((int,), 64, "invocations in flight at once"),
        "invoke_retries": Setting((int,), 8, "retries of one invocation on 429 and 5xx"),
        "action_prefix": Setting((str,), "pywren", "prefix of the deployed action names"),
        "remote_invoker": Setting((bool,), False, "let one activation invoke the rest of a large map"),
        "remote_invoker_threshold": Setting((int,), 500, "map size from which the remote invoker is used"),
        "verify_tls": Setting((bool,), True, "verify the endpoint's TLS certificate"),
        "lost_check_interval": Setting(
            (int, float),
            10,
            "seconds between checks of OpenWhisk's records for calls whose activation ended without a final status",
        ),
    },
    "k8s": {
        "kubeconfig": Setting((str, type(None)), None, "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"),
        "context": Setting((str, type(None)), None, "kubeconfig context (default: the current context)"),
        "kubeconfig_dict": Setting(
            (dict, type(None)), None, "a kubeconfig as a mapping (an Airflow kubernetes connection's)"
        ),
        "in_cluster": Setting(
            (bool, type(None)), None, "use the pod's service account (default: when in a pod with no kubeconfig)"
        ),
        "namespace": Setting((str,), "default", "namespace of the Jobs"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "runtime image of the pods"),
        "image_pull_policy": Setting(
            (str, type(None)),
            None,
            "Always, IfNotPresent or Never (default: Kubernetes')",
            ("Always", "IfNotPresent", "Never"),
        ),
        "image_pull_secret": Setting((str, type(None)), None, "Secret with the registry credentials of the image"),
        "service_account": Setting(
            (str, type(None)), None, "service account of the pods (default: none, no API token)"
        ),
        "node_selector": Setting((dict, type(None)), None, "node labels the pods must run on"),
        "cpu": Setting((str, int, float), "1", "CPU request of each pod"),
        "calls_per_pod": Setting((int,), 10, "calls each pod runs one after another"),
        "parallelism": Setting((int,), 100, "pods of one job running at once"),
        "deadline_margin": Setting(
            (int, float),
            120,
            "seconds added to calls_per_pod x timeout for a pod's activeDeadlineSeconds (start-up, image pull)",
        ),
        "image_pull_timeout": Setting(
            (int, float), 120, "seconds a pod may fail to pull its image before its calls fail"
        ),
        "ttl_after_finished": Setting(
            (int, type(None)), 3600, "seconds Kubernetes keeps a finished Job (null: until clean())"
        ),
        "job_prefix": Setting((str,), "pywren", "prefix of the Job names"),
        "lost_check_interval": Setting(
            (int, float), 10, "seconds between checks of the pods of jobs with calls pending"
        ),
    },
    "code_engine": {
        "region": Setting((str, type(None)), None, "IBM Cloud region of the project, e.g. us-south"),
        "project_id": Setting((str, type(None)), None, "Code Engine project id (ibmcloud ce project get --name P)"),
        "endpoint": Setting(
            (str, type(None)), None, "API endpoint (default: https://api.{region}.codeengine.cloud.ibm.com/v2)"
        ),
        "iam_api_key": Setting((str, type(None)), None, "IBM Cloud API key"),
        "iam_endpoint": Setting((str,), "https://iam.cloud.ibm.com/identity/token", "IAM token endpoint"),
        "runtime": Setting((str,), "airflowpywren/runtime:latest", "runtime image of the job runs"),
        "image_secret": Setting((str, type(None)), None, "registry access secret of the image, in the project"),
        "cpu": Setting(
            (str, int, float, type(None)), None, "vCPU per instance (default: the smallest that accepts the memory)"
        ),
        "calls_per_instance": Setting((int,), 10, "calls each instance runs one after another"),
        "deadline_margin": Setting(
            (int, float),
            120,
            "seconds added to calls_per_instance x timeout for an instance's scale_max_execution_time",
        ),
        "service_account": Setting(
            (str,),
            "none",
            "service account of the instances (none, reader, writer, manager)",
            ("none", "reader", "writer", "manager"),
        ),
        "image_pull_timeout": Setting(
            (int, float), 120, "seconds an instance may fail to pull its image before its calls fail"
        ),
        "job_prefix": Setting((str,), "pywren", "prefix of the job run names"),
        "lost_check_interval": Setting(
            (int, float), 10, "seconds between checks of the job runs of jobs with calls pending"
        ),
        "max_retries": Setting((int,), 5, "retries of one API request on 429 and 5xx"),
        "verify_tls": Setting((bool,), True, "verify the endpoint's TLS certificate"),
    },
    "rabbitmq": {
        "amqp_url": Setting((str, type(None)), None, "amqp://user:password@host:port/vhost"),
        "queue_ttl": Setting((int,), 86_400, "seconds an unconsumed status queue is kept"),
        "reconcile_interval": Setting((int, float), 5.0, "seconds between storage checks that catch lost notices"),
    },
}


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(options))}"


def defaults() -> Config:
    """The built-in defaults: compute and storage on this machine, monitoring by storage."""
    return {section: {key: copy.deepcopy(s.default) for key, s in keys.items()} for section, keys in SCHEMA.items()}


def _read_file(path: Path) -> Config:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PyWrenConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PyWrenConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def _read_env() -> Config:
    raw = os.environ.get("PYWREN_CONFIG")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PyWrenConfigError(f"PYWREN_CONFIG is not valid JSON: {exc}; set it to a JSON object of sections") from exc
    if not isinstance(data, dict):
        raise PyWrenConfigError("PYWREN_CONFIG must be a JSON object of sections, e.g. '{\"pywren\": {...}}'")
    return data


def merge(base: Config, override: Mapping[str, Any], origin: str) -> Config:
    """Merge ``override`` into ``base`` section by section, checking names and types."""
    merged = copy.deepcopy(base)
    for section, values in override.items():
        if section not in SCHEMA:
            raise PyWrenConfigError(f"unknown section '{section}' in {origin}" + _suggest(section, list(SCHEMA)))
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise PyWrenConfigError(f"section '{section}' in {origin} must be a mapping, got {type(values).__name__}")
        for key, value in values.items():
            setting = SCHEMA[section].get(key)
            if setting is None:
                raise PyWrenConfigError(
                    f"unknown key '{key}' in section '{section}' ({origin})" + _suggest(key, list(SCHEMA[section]))
                )
            merged[section][key] = _check_type(section, key, value, setting, origin)
    return merged


def _check_type(section: str, key: str, value: Any, setting: Setting, origin: str) -> Any:
    wrong_bool = isinstance(value, bool) and bool not in setting.types
    if wrong_bool or not isinstance(value, setting.types):
        expected = " or ".join("null" if t is type(None) else t.__name__ for t in setting.types)
        raise PyWrenConfigError(
            f"'{section}.{key}' in {origin} must be {expected}, got {type(value).__name__} {value!r} ({setting.help})"
        )
    if setting.choices and value not in setting.choices:
        raise PyWrenConfigError(
            f"'{section}.{key}' in {origin} is {value!r}; choose one of {', '.join(setting.choices)}"
            + (_suggest(value, list(setting.choices)) if isinstance(value, str) else "")
        )
    return value


_MINIMUMS: dict[tuple[str, str], float] = {
    ("pywren", "runtime_memory"): 1,
    ("pywren", "runtime_timeout"): 0.001,
    ("pywren", "monitor_interval"): 0.001,
    ("pywren", "max_workers"): 1,
    ("pywren", "lost_call_grace"): 0,
    ("pywren", "write_retry_seconds"): 0,
    ("pywren", "invocation_grace"): 1,
    ("localhost", "workers"): 1,
    ("localhost", "runner_idle_timeout"): 1,
    ("localhost", "max_extra_workers"): 0,
    ("ibm_cos", "max_attempts"): 1,
    ("ibm_cos", "connect_timeout"): 0.001,
    ("ibm_cos", "read_timeout"): 0.001,
    ("ibm_cf", "runtime_memory"): 128,
    ("ibm_cf", "timeout"): 1,
    ("ibm_cf", "max_concurrency"): 1,
    ("ibm_cf", "invoke_retries"): 0,
    ("ibm_cf", "remote_invoker_threshold"): 1,
    ("ibm_cf", "lost_check_interval"): 0,
    ("k8s", "calls_per_pod"): 1,
    ("k8s", "parallelism"): 1,
    ("k8s", "deadline_margin"): 0,
    ("k8s", "image_pull_timeout"): 0,
    ("k8s", "ttl_after_finished"): 0,
    ("k8s", "lost_check_interval"): 0,
    ("code_engine", "calls_per_instance"): 1,
    ("code_engine", "deadline_margin"): 0,
    ("code_engine", "lost_check_interval"): 0,
    ("code_engine", "image_pull_timeout"): 0,
    ("code_engine", "max_retries"): 0,
    ("rabbitmq", "queue_ttl"): 1,
    ("rabbitmq", "reconcile_interval"): 0.001,
}


_MAXIMUMS: dict[tuple[str, str], float] = {
    ("pywren", "runtime_memory"): validation.MAX_RUNTIME_MEMORY,
    ("pywren", "runtime_timeout"): validation.MAX_TIMEOUT,
    ("pywren", "monitor_interval"): validation.MAX_MONITOR_INTERVAL,
    ("pywren", "lost_call_grace"): validation.MAX_TIMEOUT,
    ("pywren", "write_retry_seconds"): validation.MAX_TIMEOUT,
    ("pywren", "invocation_grace"): validation.MAX_TIMEOUT,
    ("localhost", "workers"): validation.MAX_WORKERS,
    ("localhost", "runner_idle_timeout"): validation.MAX_TIMEOUT,
    ("ibm_cf", "timeout"): validation.MAX_TIMEOUT,
    ("ibm_cf", "runtime_memory"): validation.MAX_RUNTIME_MEMORY,
}
"""Documented upper bounds: a larger value is a mistake (or would overflow a timer or a limit)."""


def _check_complete(config: Config) -> None:
    """Check that the chosen backends have every setting they need."""
    pw = config["pywren"]
    for section, values in config.items():
        for key, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise PyWrenConfigError(f"'{section}.{key}' must be a finite number, got {value!r}")
    for (section, key), minimum in _MINIMUMS.items():
        value = config[section].get(key)
        if value is not None and value < minimum:
            raise PyWrenConfigError(f"'{section}.{key}' must be {minimum} or more, got {value}")
    for (section, key), maximum in _MAXIMUMS.items():
        value = config[section].get(key)
        if value is not None and value > maximum:
            raise PyWrenConfigError(f"'{section}.{key}' must be {maximum:g} or less, got {value}")
    if pw["storage_backend"] == "ibm_cos":
        cos = config["ibm_cos"]
        for key in ("endpoint", "bucket"):
            if not cos[key]:
                raise PyWrenConfigError(f"storage_backend 'ibm_cos' needs 'ibm_cos.{key}'; set it in the config")
        has_hmac = cos["access_key_id"] and cos["secret_access_key"]
        if not (has_hmac or cos["api_key"]):
            raise PyWrenConfigError(
                "storage_backend 'ibm_cos' needs credentials: 'ibm_cos.api_key' (IAM) or both "
                "'ibm_cos.access_key_id' and 'ibm_cos.secret_access_key' (HMAC)"
            )
    if pw["compute_backend"] == "ibm_cf":
        cf = config["ibm_cf"]
        for key in ("endpoint", "namespace"):
            if not cf[key]:
                raise PyWrenConfigError(f"compute_backend 'ibm_cf' needs 'ibm_cf.{key}'; set it in the config")
        if not (cf["api_key"] or cf["iam_api_key"]):
            raise PyWrenConfigError(
                "compute_backend 'ibm_cf' needs 'ibm_cf.api_key' ('uuid:key') or 'ibm_cf.iam_api_key'"
            )
        if cf["api_key"] and ":" not in cf["api_key"]:
            raise PyWrenConfigError(
                "'ibm_cf.api_key' must have the form 'uuid:key' as printed by 'ibmcloud fn property get --auth'"
            )
    if pw["compute_backend"] == "code_engine":
        ce = config["code_engine"]
        for key in ("project_id", "iam_api_key"):
            if not ce[key]:
                raise PyWrenConfigError(
                    f"compute_backend 'code_engine' needs 'code_engine.{key}'; set it in the config"
                )
        if not (ce["region"] or ce["endpoint"]):
            raise PyWrenConfigError("compute_backend 'code_engine' needs 'code_engine.region' (e.g. us-south)")
    if pw["rabbitmq_monitor"] and not config["rabbitmq"]["amqp_url"]:
        raise PyWrenConfigError(
            "rabbitmq_monitor=True needs 'rabbitmq.amqp_url', e.g. amqp://guest:guest@127.0.0.1:5672/"
        )
    if pw["log_level"] is not None and pw["log_level"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise PyWrenConfigError(
            f"'pywren.log_level' is {pw['log_level']!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )


def config_file_path() -> Path | None:
    """The config file in use: ``PYWREN_CONFIG_FILE`` if set (it must exist), else ``~/.pywren_config`` if present."""
    explicit = os.environ.get("PYWREN_CONFIG_FILE")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise PyWrenConfigError(f"PYWREN_CONFIG_FILE points to {path}, which does not exist; fix or unset it")
        return path
    path = Path(DEFAULT_CONFIG_FILE).expanduser()
    return path if path.is_file() else None


def load_config(overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> Config:
    """Build and validate the configuration from every layer; later layers win.

    ``base`` (settings inherited by an executor created inside a call) comes right after
    the defaults.
    """
    config = defaults()
    if base:
        config = merge(config, base, "the settings of the call that creates this executor")
    path = config_file_path()
    if path is not None:
        config = merge(config, _read_file(path), f"config file {path}")
    config = merge(config, _read_env(), "PYWREN_CONFIG")
    if overrides:
        if not isinstance(overrides, Mapping):
            raise PyWrenConfigError(f"config must be a dict of sections, got {type(overrides).__name__}")
        config = merge(config, overrides, "the config argument")
    _check_complete(config)
    return config


def storage_section(config: Config) -> dict[str, Any]:
    """The settings of the configured storage backend."""
    return config[config["pywren"]["storage_backend"]]
