"""Bad configuration and bad input fail with clear errors before anything is invoked."""

from __future__ import annotations

import json
import threading

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute


@pytest.fixture
def pw(localhost_config):
    executor = pywren.FunctionExecutor(config=localhost_config)
    yield executor
    executor.clean()


@pytest.fixture
def nothing_invoked(pw):
    """Asserts after the test that the runner received no call and storage holds no job."""
    compute = LocalhostCompute(pw.config)
    before = (compute.stats() or {}).get("invoked", 0)
    yield
    assert (compute.stats() or {}).get("invoked", 0) == before
    assert pw.job_ids() == []


def two_args(a, b):
    return a + b


def test_unpicklable_item_names_the_item(pw, nothing_invoked):
    with pytest.raises(pywren.PyWrenSubmitError, match="iterdata item 2 .* cannot be pickled"):
        pw.map(len, [[1], [2], [threading.Lock()]])


def test_unpicklable_function_is_named(pw, nothing_invoked):
    lock = threading.Lock()

    def uses_lock(x):
        with lock:
            return x

    with pytest.raises(pywren.PyWrenSubmitError, match="uses_lock.*cannot be pickled"):
        pw.call_async(uses_lock, 1)


def test_item_that_does_not_fit_the_signature(pw, nothing_invoked):
    with pytest.raises(pywren.PyWrenSubmitError, match="iterdata item 1 .*missing a required argument: 'b'"):
        pw.map(two_args, [{"a": 1, "b": 2}, {"a": 1}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"runtime_memory": "1GB"}, "runtime_memory must be a positive number of MB"),
        ({"extra_env": {"A": object()}}, "extra_env values must be strings"),
        ({"extra_meta": {"when": object()}}, "extra_meta must be JSON-serializable"),
        ({"exclude_modules": "numpy"}, "exclude_modules must be a list"),
    ],
)
def test_bad_keyword_values(pw, nothing_invoked, kwargs, message):
    with pytest.raises(pywren.PyWrenSubmitError, match=message):
        pw.map(len, [[1]], **kwargs)


def test_iterdata_must_be_a_list(pw, nothing_invoked):
    with pytest.raises(pywren.PyWrenSubmitError, match="iterdata must be a list"):
        pw.map(len, "abc")
    with pytest.raises(pywren.PyWrenSubmitError, match="iterdata is empty"):
        pw.map(len, [])


def test_reducer_must_take_one_argument(pw, nothing_invoked):
    with pytest.raises(pywren.PyWrenSubmitError, match="reducer"):
        pw.map_reduce(len, [[1]], two_args)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"pywren": {"runtime_memroy": 512}},
            "unknown key 'runtime_memroy' in section 'pywren'.*did you mean 'runtime_memory'",
        ),
        ({"pywrn": {}}, "unknown section 'pywrn'.*did you mean 'pywren'"),
        ({"pywren": {"storage_backend": "s3"}}, "'pywren.storage_backend'.*choose one of localhost, ibm_cos"),
        ({"localhost": {"workers": "four"}}, "'localhost.workers'.*must be int, got str"),
        ({"pywren": {"storage_backend": "ibm_cos"}}, "needs 'ibm_cos.endpoint'"),
        (
            {"pywren": {"storage_backend": "ibm_cos"}, "ibm_cos": {"endpoint": "http://x", "bucket": "b"}},
            "needs credentials",
        ),
        ({"pywren": {"compute_backend": "ibm_cf"}}, "needs 'ibm_cf.endpoint'"),
        ({"pywren": {"rabbitmq_monitor": True}}, "needs 'rabbitmq.amqp_url'"),
        ({"pywren": {"log_level": "LOUD"}}, "log_level"),
        ({"localhost": {"runner_idle_timeout": 0}}, "'localhost.runner_idle_timeout' must be 1 or more, got 0"),
        ({"pywren": {"max_workers": 0}}, "'pywren.max_workers' must be 1 or more"),
    ],
)
def test_bad_config_fails_when_the_executor_is_created(config, message):
    with pytest.raises(pywren.PyWrenConfigError, match=message):
        pywren.ibm_cf_executor(config=config)


def test_config_layers_later_wins(tmp_path, monkeypatch, localhost_config):
    from airflow_pywren.executor.config import load_config

    config_file = tmp_path / "pywren.yaml"
    config_file.write_text("pywren:\n  monitor_interval: 0.5\n  runtime_timeout: 100\nlocalhost:\n  workers: 3\n")
    monkeypatch.setenv("PYWREN_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("PYWREN_CONFIG", json.dumps({"pywren": {"runtime_timeout": 200}}))
    config = load_config({"localhost": {"workers": 5}})
    assert config["pywren"]["monitor_interval"] == 0.5  # file
    assert config["pywren"]["runtime_timeout"] == 200  # environment over file
    assert config["localhost"]["workers"] == 5  # argument over file
    assert config["pywren"]["compute_backend"] == "localhost"  # default


def test_default_config_file_in_home_is_read(tmp_path, monkeypatch):
    from airflow_pywren.executor.config import load_config

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".pywren_config").write_text("localhost:\n  workers: 7\n")
    monkeypatch.setenv("HOME", str(home))
    assert load_config()["localhost"]["workers"] == 7


def test_bad_config_file_and_env_are_reported(tmp_path, monkeypatch):
    from airflow_pywren.executor.config import load_config

    monkeypatch.setenv("PYWREN_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(pywren.PyWrenConfigError, match="does not exist"):
        load_config()
    monkeypatch.delenv("PYWREN_CONFIG_FILE")
    monkeypatch.setenv("PYWREN_CONFIG", "{not json")
    with pytest.raises(pywren.PyWrenConfigError, match="PYWREN_CONFIG is not valid JSON"):
        load_config()
