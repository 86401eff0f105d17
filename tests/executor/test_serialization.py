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
    dag_file.write_text(
        textwrap.dedent("""
        FACTOR = 7

        def helper(x):
            return x * FACTOR

        def task_function(x):
            return helper(x) + 1

        def broken(x):
            raise ValueError(x)
    """)
    )
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
        f"{package}/__init__.py",
        f"{package}/sub/__init__.py",
        f"{package}/sub/core.py",
    ]
    assert pw.get_result(pw.call_async(lambda x: module.double(x), 21)) == 42


def test_installed_packages_are_not_shipped():
    import json as stdlib_json

    import yaml

    def uses_installed(x):
        return yaml.safe_dump(stdlib_json.loads(x))

    shipped = serialization.loads(serialization.serialize_function(uses_installed))["modules"]
    assert shipped and all(path.startswith("tests/") for path in shipped)  # only the test package itself
