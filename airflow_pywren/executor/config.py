"""Layered configuration: defaults, config file, ``PYWREN_CONFIG``, then the ``config`` argument.

The result is a plain ``dict`` of sections: ``pywren`` and ``rabbitmq``, declared here, and one
section per backend (``localhost``, ``ibm_cos``, ``ibm_cf``, ``k8s``, ``code_engine``), declared by
the backend's own module (its ``settings_schema`` and ``check_settings``). The backend names
come from the registries in :mod:`airflow_pywren.executor.compute` and
:mod:`airflow_pywren.executor.storage`. The result is validated when the executor is created so
that a typo or a missing setting fails before anything is invoked.
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
from typing import TYPE_CHECKING, Any

from airflow_pywren.executor import validation
from airflow_pywren.executor.errors import PyWrenConfigError

if TYPE_CHECKING:
    from airflow_pywren.executor.compute.base import ComputeBackend
    from airflow_pywren.executor.storage.base import StorageBackend

Config = dict[str, dict[str, Any]]

DEFAULT_CONFIG_FILE = "~/.pywren_config"


@dataclass(frozen=True)
class Setting:
    """One configuration key: its accepted types, default, a short description and its bounds."""

    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    """Documented upper bound: a larger value is a mistake (or would overflow a timer or a limit)."""


PYWREN_SETTINGS: dict[str, Setting] = {
    "runtime": Setting((str, type(None)), None, "runtime image (ibm_cf) or label"),
    "runtime_memory": Setting((int,), 256, "memory per call in MB", minimum=1, maximum=validation.MAX_RUNTIME_MEMORY),
    "runtime_timeout": Setting(
        (int, float), 600, "default timeout per call in seconds", minimum=0.001, maximum=validation.MAX_TIMEOUT
    ),
    "monitor_interval": Setting(
        (int, float),
        0.05,
        "seconds between storage polls",
        minimum=0.001,
        maximum=validation.MAX_MONITOR_INTERVAL,
    ),
    "rabbitmq_monitor": Setting((bool,), False, "resolve futures from RabbitMQ messages"),
    "log_level": Setting((str, type(None)), None, "logging level of the executor"),
    "max_workers": Setting((int,), 16, "client threads for storage reads", minimum=1),
    "lost_call_grace": Setting(
        (int, float),
        30,
        "seconds past its timeout after which a running call with no status is failed",
        minimum=0,
        maximum=validation.MAX_TIMEOUT,
    ),
    "invocation_grace": Setting(
        (int, float),
        60,
        "seconds without news from a process invoking a job's calls after which an attaching "
        "process takes its uninvoked calls for never invoked (an Airflow retry invokes them)",
        minimum=1,
        maximum=validation.MAX_TIMEOUT,
    ),
    "write_retry_seconds": Setting(
        (int, float),
        30,
        "seconds a call retries a status or result write that storage "
        "refused before it gives up (the client then fails the call with the storage error)",
        minimum=0,
        maximum=validation.MAX_TIMEOUT,
    ),
    "signing_key": Setting(
        (str, type(None)), None, "secret that signs every pickle in storage (default: the key file)"
    ),
    "previous_signing_keys": Setting((list,), [], "older signing keys still accepted when reading (key rotation)"),
    "signing_key_file": Setting(
        (str,), "~/.pywren/signing.key", "per-user key file used when signing_key is unset (created with mode 0600)"
    ),
}
"""The ``pywren`` section, after ``compute_backend`` and ``storage_backend`` (whose choices are the registries')."""

RABBITMQ_SETTINGS: dict[str, Setting] = {
    "amqp_url": Setting((str, type(None)), None, "amqp://user:password@host:port/vhost"),
    "queue_ttl": Setting((int,), 86_400, "seconds an unconsumed status queue is kept", minimum=1),
    "reconcile_interval": Setting(
        (int, float), 5.0, "seconds between storage checks that catch lost notices", minimum=0.001
    ),
}


def backend_classes() -> list[type[StorageBackend] | type[ComputeBackend]]:
    """Every registered storage backend, then every compute backend (imported on first use)."""
    from airflow_pywren.executor import compute, storage

    return [
        *(storage.storage_class(name) for name in storage.BACKENDS),
        *(compute.compute_class(name) for name in compute.BACKENDS),
    ]


def schema() -> dict[str, dict[str, Setting]]:
    """Every section and its settings. A compute and a storage backend of the same name share its section."""
    from airflow_pywren.executor import compute, storage

    sections: dict[str, dict[str, Setting]] = {
        "pywren": {
            "compute_backend": Setting((str,), "localhost", "where calls run", tuple(compute.BACKENDS)),
            "storage_backend": Setting(
                (str,), "localhost", "where jobs, results and status live", tuple(storage.BACKENDS)
            ),
            **PYWREN_SETTINGS,
        }
    }
    for backend in backend_classes():
        section = sections.setdefault(backend.name, {})
        for key, setting in backend.settings_schema.items():
            if section.setdefault(key, setting) != setting:
                raise PyWrenConfigError(
                    f"backend {backend.__name__} declares '{backend.name}.{key}' differently from another "
                    f"backend named {backend.name!r}; backends that share a section must agree on its keys"
                )
    sections["rabbitmq"] = RABBITMQ_SETTINGS
    return sections


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(options))}"


def defaults() -> Config:
    """The built-in defaults: compute and storage on this machine, monitoring by storage."""
    return {section: {key: copy.deepcopy(s.default) for key, s in keys.items()} for section, keys in schema().items()}


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
    sections = schema()
    merged = copy.deepcopy(base)
    for section, values in override.items():
        if section not in sections:
            raise PyWrenConfigError(f"unknown section '{section}' in {origin}" + _suggest(section, list(sections)))
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise PyWrenConfigError(f"section '{section}' in {origin} must be a mapping, got {type(values).__name__}")
        for key, value in values.items():
            setting = sections[section].get(key)
            if setting is None:
                raise PyWrenConfigError(
                    f"unknown key '{key}' in section '{section}' ({origin})" + _suggest(key, list(sections[section]))
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


def _check_complete(config: Config) -> None:
    """Check bounds, then that the chosen backends have every setting they need (their own ``check_settings``)."""
    from airflow_pywren.executor import compute, storage

    pw = config["pywren"]
    for section, values in config.items():
        for key, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise PyWrenConfigError(f"'{section}.{key}' must be a finite number, got {value!r}")
    for section, settings in schema().items():
        for key, setting in settings.items():
            value = config.get(section, {}).get(key)
            if value is None or isinstance(value, bool):
                continue
            if setting.minimum is not None and value < setting.minimum:
                raise PyWrenConfigError(f"'{section}.{key}' must be {setting.minimum} or more, got {value}")
            if setting.maximum is not None and value > setting.maximum:
                raise PyWrenConfigError(f"'{section}.{key}' must be {setting.maximum:g} or less, got {value}")
    storage.storage_class(pw["storage_backend"]).check_settings(config[pw["storage_backend"]])
    compute.compute_class(pw["compute_backend"]).check_settings(config[pw["compute_backend"]])
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


def load_config(
    overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None, complete: bool = True
) -> Config:
    """Build and validate the configuration from every layer; later layers win.

    ``base`` (settings inherited by an executor created inside a call) comes right after
    the defaults. ``complete=False`` checks names and types only, not that the chosen backends
    have what they need (to read which backend is configured, say).
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
    if complete:
        _check_complete(config)
    return config


def storage_section(config: Config) -> dict[str, Any]:
    """The settings of the configured storage backend."""
    return config[config["pywren"]["storage_backend"]]
