"""Ids, storage keys and numeric input: what could address other data or hang is refused before anything runs."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren import cli
from airflow_pywren.executor.config import load_config, storage_section
from airflow_pywren.executor.errors import InvalidIdError, PyWrenConfigError, PyWrenSubmitError, StorageError
from airflow_pywren.executor.storage import create_storage

BAD_IDS = [".", "..", "", "a/b", "../other", "a\\b", "-rf", " ", "x" * 129, "a\0b"]


def add_one(x):
    return x + 1


@pytest.fixture
def two_executors(localhost_config: dict[str, Any]):
    """Two executors with one finished job each, in the same storage."""
    first, second = pywren.FunctionExecutor(config=localhost_config), pywren.FunctionExecutor(config=localhost_config)
    for executor in (first, second):
        executor.map(add_one, [1, 2])
        assert executor.get_result() == [2, 3]
    yield first, second
    for executor in (first, second):
        executor.clean()
        executor.close()


@pytest.mark.parametrize("bad", BAD_IDS)
def test_clean_refuses_bad_executor_ids_and_deletes_nothing(two_executors, bad: str) -> None:
    first, second = two_executors
    with pytest.raises(InvalidIdError, match="is not a valid id"):
        first.clean(executor_id=bad)
    assert first.job_ids() == ["M000"] and second.job_ids() == ["M000"]
    assert first.get_result(first.job_futures("M000")) == [2, 3]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_executor_and_job_lookups_refuse_bad_ids(localhost_config: dict[str, Any], pw, bad: str) -> None:
    with pytest.raises(InvalidIdError):
        pywren.FunctionExecutor(config=localhost_config, executor_id=bad)
    with pytest.raises(InvalidIdError):
        pw.job_futures("M000", executor_id=bad)
    with pytest.raises(InvalidIdError):
        pw.job_ids(executor_id=bad)
    with pytest.raises(InvalidIdError, match="not a valid job id"):
        pw.job_futures(bad or "..")


@pytest.mark.parametrize("bad", [".", "..", "", "a/b"])
def test_cli_clean_refuses_bad_executor_ids(two_executors, localhost_config, monkeypatch, capsys, bad: str) -> None:
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps(localhost_config))
    first, second = two_executors
    assert cli.main(["clean", "--executor-id", bad]) == 1
    assert "--executor-id" in capsys.readouterr().err
    assert first.job_ids() == ["M000"] and second.job_ids() == ["M000"]
    assert cli.main(["clean", "--executor-id", first.executor_id]) == 0
    assert first.job_ids() == [] and second.job_ids() == ["M000"]


OUTSIDE_KEYS = [
    "../escape",
    "other-prefix/x",
    "pywren.jobs/../escape",
    "pywren.jobs/a/../../escape",
    "pywren.jobs//x",
    "pywren.jobs/./x",
    "/etc/passwd",
    "pywren.jobs/a\\..\\x",
    "pywren.jobs",
]


@pytest.fixture(params=["localhost", "ibm_cos"])
def any_storage(request, localhost_config):
    config = localhost_config
    if request.param == "ibm_cos":
        config = {**localhost_config, **request.getfixturevalue("cos_config")}
        config["pywren"] = {**localhost_config["pywren"], "storage_backend": "ibm_cos"}
    config = load_config(config)
    storage = create_storage(config["pywren"]["storage_backend"], storage_section(config))
    storage.check()
    return storage


@pytest.mark.parametrize("key", OUTSIDE_KEYS)
def test_storage_refuses_keys_outside_its_prefix(any_storage, key: str) -> None:
    with pytest.raises(StorageError, match="outside|component"):
        any_storage.put(key, b"planted")
    with pytest.raises(StorageError, match="outside|component"):
        any_storage.get(key)
    if key != "pywren.jobs":
        with pytest.raises(StorageError, match="outside|component"):
            any_storage.list_keys(key + "/")
        with pytest.raises(StorageError, match="outside|component"):
            any_storage.delete_prefix(key + "/")
    inside = f"{any_storage.prefix}/fault-suite/ok"
    any_storage.put(inside, b"fine")
    assert any_storage.get(inside) == b"fine"
    assert any_storage.delete_prefix(f"{any_storage.prefix}/fault-suite/") == 1


@pytest.mark.parametrize("prefix", ["", "/", ".", "a/../b", "a//b"])
def test_storage_prefix_must_be_a_plain_path(localhost_config, prefix: str) -> None:
    config = {**localhost_config, "localhost": {**localhost_config["localhost"], "storage_prefix": prefix}}
    with pytest.raises(PyWrenConfigError, match="storage_prefix"):
        pywren.FunctionExecutor(config=config)


@pytest.mark.parametrize("bucket", ["..", ".", "a/b", ""])
def test_localhost_bucket_must_be_a_plain_name(localhost_config, bucket: str) -> None:
    config = {**localhost_config, "localhost": {**localhost_config["localhost"], "bucket": bucket}}
    with pytest.raises(PyWrenConfigError, match="localhost.bucket"):
        pywren.FunctionExecutor(config=config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": math.nan}, "timeout must be"),
        ({"timeout": math.inf}, "timeout must be"),
        ({"timeout": -math.inf}, "timeout must be"),
        ({"timeout": 1e300}, "timeout must be a finite number from 0.001 to 2.6784e\\+06 seconds"),
        ({"runtime_memory": 10**12}, "runtime_memory must be an integer from 1 to 1.04858e\\+06 MB"),
        ({"runtime_memory": 0}, "runtime_memory must be a positive number"),
        ({"runtime_memory": math.nan}, "runtime_memory must be an integer from 1 to 1.04858e\\+06 MB, got nan"),
        ({"runtime_memory": math.inf}, "runtime_memory must be an integer from 1 to 1.04858e\\+06 MB, got inf"),
        ({"runtime_memory": -math.inf}, "runtime_memory must be a positive number of MB, got -inf"),
    ],
)
def test_absurd_call_options_are_refused(pw, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PyWrenSubmitError, match=message):
        pw.map(add_one, [1], **kwargs)
    assert pw.job_ids() == []


@pytest.mark.parametrize("memory", [math.nan, math.inf])
def test_runtime_memory_nan_or_infinite_is_refused_by_every_submission(localhost_config, pw, memory: float) -> None:
    named = f"runtime_memory must be an integer from 1 to 1.04858e\\+06 MB, got {memory!r}"
    with pytest.raises(PyWrenSubmitError, match=named):
        pw.call_async(add_one, 1, runtime_memory=memory)
    with pytest.raises(PyWrenSubmitError, match=named):
        pw.map_reduce(add_one, [1], sum, map_runtime_memory=memory)
    with pytest.raises(PyWrenSubmitError, match=named):
        pw.map_reduce(add_one, [1], sum, reduce_runtime_memory=memory)
    assert pw.job_ids() == []
    with pytest.raises(PyWrenConfigError, match=f"'pywren.runtime_memory' .*must be int, got float {memory!r}"):
        pywren.FunctionExecutor(config=localhost_config, runtime_memory=memory)  # the executor's default per call


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("pywren", "monitor_interval", math.nan, "'pywren.monitor_interval' must be a finite number"),
        ("pywren", "monitor_interval", math.inf, "'pywren.monitor_interval' must be a finite number"),
        ("pywren", "monitor_interval", 1e9, "'pywren.monitor_interval' must be 3600 or less"),
        ("pywren", "monitor_interval", 0, "'pywren.monitor_interval' must be 0.001 or more"),
        ("pywren", "runtime_timeout", math.nan, "'pywren.runtime_timeout' must be a finite number"),
        ("pywren", "runtime_memory", 10**9, "'pywren.runtime_memory' must be 1.04858e\\+06 or less"),
        ("pywren", "runtime_memory", math.nan, "'pywren.runtime_memory' .*must be int, got float nan"),
        ("pywren", "runtime_memory", math.inf, "'pywren.runtime_memory' .*must be int, got float inf"),
        ("localhost", "workers", 257, "'localhost.workers' must be 256 or less"),
        ("localhost", "workers", 10**6, "'localhost.workers' must be 256 or less"),
        ("localhost", "runner_idle_timeout", math.inf, "'localhost.runner_idle_timeout' must be a finite number"),
        ("ibm_cf", "timeout", math.nan, "'ibm_cf.timeout' must be a finite number"),
    ],
)
def test_absurd_settings_are_refused(localhost_config, section: str, key: str, value: Any, message: str) -> None:
    config = {**localhost_config, section: {**localhost_config.get(section, {}), key: value}}
    with pytest.raises(PyWrenConfigError, match=message):
        pywren.FunctionExecutor(config=config)


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "/etc/passwd", "a//b", "./a", "a\\..\\b"])
def test_whole_bucket_view_never_leaves_the_bucket(any_storage, key: str) -> None:
    """Functions reach user objects anywhere in the bucket (the injected ``storage``), never outside it."""
    view = any_storage.whole_bucket()
    with pytest.raises(StorageError, match="outside|component"):
        view.put(key, b"planted")
    with pytest.raises(StorageError, match="outside|component"):
        view.get(key)
    view.put("fault-suite-user/ok", b"fine")
    assert view.get("fault-suite-user/ok") == b"fine"
    with pytest.raises(StorageError, match="outside"):
        any_storage.get("fault-suite-user/ok")  # the job storage itself stays under its prefix
    assert view.delete_prefix("fault-suite-user/") == 1


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("PYWREN_CONFIG", '{"pywren": {"runtime_memory": NaN}}'),
        ("PYWREN_CONFIG", '{"pywren": {"runtime_memory": Infinity}}'),
        ("PYWREN_CONFIG_FILE", "pywren:\n  runtime_memory: .nan\n"),
        ("PYWREN_CONFIG_FILE", "pywren:\n  runtime_memory: .inf\n"),
    ],
)
def test_runtime_memory_nan_or_infinite_in_config_sources_is_refused(
    localhost_config, monkeypatch, tmp_path, source: str, text: str
) -> None:
    if source == "PYWREN_CONFIG_FILE":
        (tmp_path / "config.yaml").write_text(text)
        monkeypatch.setenv(source, str(tmp_path / "config.yaml"))
    else:
        monkeypatch.setenv(source, text)
    with pytest.raises(PyWrenConfigError, match=r"'pywren.runtime_memory' .*must be int, got float (nan|inf)"):
        pywren.FunctionExecutor(config=localhost_config)
