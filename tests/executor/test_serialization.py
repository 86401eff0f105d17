"""Serialization rules: by-value pickling of unimportable modules, shipped local modules, call modes."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import serialization


@pytest.fixture
def pw(localhost_config):
    executor = pywren.FunctionExecutor(config=localhost_config)
    yield executor
    executor.clean()


def _load_under_mangled_name(path, name):
    """Import a file the way Airflow imports DAG files: under a name that does not lead back to it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_function_from_a_mangled_module_runs_remotely(pw, tmp_path):
    dag_file = tmp_path / "my_dag.py"
    dag_file.write_text(textwrap.dedent("""
        FACTOR = 7

        def helper(x):
            return x * FACTOR

        def task_function(x):
            return helper(x) + 1

        def broken(x):
            raise ValueError(x)
    """))
    module = _load_under_mangled_name(dag_file, f"unusual_prefix_{uuid.uuid4().hex}_my_dag")
    assert pw.get_result(pw.map(module.task_function, [1, 2])) == [8, 15]
    with pytest.raises(ValueError) as info:
        pw.get_result(pw.call_async(module.broken, 1))
    assert f'File "{dag_file}", line' in info.value.__cause__.traceback_text  # the file, not "<dynamic-code>"


def test_local_package_is_shipped_with_its_submodules(pw, tmp_path, monkeypatch):
    package = f"pwpkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package / "sub").mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("from .sub.core import double\n")
    (tmp_path / package / "sub" / "__init__.py").write_text("")
    (tmp_path / package / "sub" / "core.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(package)
    shipped = serialization.loads(serialization.serialize_function(lambda x: module.double(x)))["modules"]
    assert sorted(k for k in shipped if k.startswith(package)) == [
        f"{package}/__init__.py", f"{package}/sub/__init__.py", f"{package}/sub/core.py"
    ]
    assert pw.get_result(pw.call_async(lambda x: module.double(x), 21)) == 42


def test_installed_packages_are_not_shipped():
    import json as stdlib_json

    import yaml

    def uses_installed(x):
        return yaml.safe_dump(stdlib_json.loads(x))

    shipped = serialization.loads(serialization.serialize_function(uses_installed))["modules"]
    assert shipped and all(path.startswith("tests/") for path in shipped)  # only the test package itself


def keyword_only(*, a, b=2):
    return a + b


def varargs(*items):
    return len(items)


@pytest.mark.parametrize(
    ("func", "item", "mode"),
    [
        (keyword_only, {"a": 1}, "kwargs"),
        (keyword_only, {"a": 1, "c": 3}, "arg"),
        (len, {"a": 1}, "arg"),
        (varargs, {"items": 1}, "arg"),
        (keyword_only, {}, "arg"),
        (keyword_only, 3, "arg"),
    ],
)
def test_call_mode_rule(func, item, mode):
    assert serialization.call_mode(func, item) == mode


def test_items_are_aggregated_with_byte_ranges():
    items = [1, "two", {"x": 3}, [4] * 100]
    blob, ranges = serialization.serialize_items(lambda x: x, items)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(blob)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert [serialization.loads(blob[start:end])[1] for start, end in ranges] == items
