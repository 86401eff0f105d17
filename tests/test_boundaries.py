"""The import boundaries between the two layers.

The executor (``airflow_pywren/executor``) runs where Airflow is not installed (the runtime image,
a plain PyWren client), so none of its modules may import Airflow. The trigger runs in Airflow's
triggerer and reaches Airflow only through ``airflow_pywren/compat.py``, the one module that knows
where each Airflow name lives and which Airflow versions have them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_pywren"

IMPORT_WITHOUT_AIRFLOW = """
import importlib, importlib.abc, json, sys

class NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"{name} is unimportable in this process")
        return None

sys.meta_path.insert(0, NoAirflow())
try:
    import airflow
    blocked = False
except ImportError:
    blocked = True
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
airflow_modules = sorted(n for n in sys.modules if n == "airflow" or n.startswith("airflow."))
print(json.dumps({"blocked": blocked, "failed": failed, "airflow_modules": airflow_modules}))
"""


def _module_names(package_dir: Path) -> list[str]:
    """Dotted names of every module and package under ``package_dir``, from the source tree."""
    names = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_executor_module_imports_with_airflow_unimportable() -> None:
    names = _module_names(PACKAGE / "executor")
    assert "airflow_pywren.executor.worker.handler" in names and len(names) > 50
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_AIRFLOW, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["blocked"], "the finder must make Airflow unimportable, else this test proves nothing"
    assert result["failed"] == {}
    assert result["airflow_modules"] == []


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names in ``path``, at any depth (functions too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; name the module"
            modules.add(node.module or "")
    return modules


def test_the_trigger_imports_airflow_only_through_compat() -> None:
    paths = sorted((PACKAGE / "triggers").glob("*.py"))
    assert PACKAGE / "triggers" / "pywren.py" in paths
    imported = {path.name: _imported_modules(path) for path in paths}
    direct = {
        name: sorted(m for m in modules if m == "airflow" or m.startswith("airflow."))
        for name, modules in imported.items()
    }
    assert direct == {name: [] for name in imported}
    assert "airflow_pywren.compat" in imported["pywren.py"]
