"""The provider refuses an Airflow older than the one it is tested on, with one clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

from airflow_pywren.compat import MIN_AIRFLOW_VERSION, check_airflow_version

pytestmark = pytest.mark.airflow


def test_the_minimum_is_the_package_requirement() -> None:
    (airflow,) = [Requirement(r) for r in requires("airflow-pywren") or [] if Requirement(r).name == "apache-airflow"]
    assert airflow.marker is None, "apache-airflow must be a dependency, not an extra"
    assert str(airflow.specifier) == f">={MIN_AIRFLOW_VERSION}"


@pytest.mark.parametrize("installed", [MIN_AIRFLOW_VERSION, "3.4.0", "4.0.0.dev0", f"{MIN_AIRFLOW_VERSION}rc1"])
def test_supported_versions_pass(installed: str) -> None:
    check_airflow_version(installed)


@pytest.mark.parametrize("installed", ["2.10.5", "3.0.6", "3.1.8", "3.2.2"])
def test_older_versions_fail_naming_the_version_needed(installed: str) -> None:
    with pytest.raises(RuntimeError) as caught:
        check_airflow_version(installed)
    message = str(caught.value)
    assert f"needs Apache Airflow {MIN_AIRFLOW_VERSION} or newer" in message
    assert f"Airflow {installed} is installed" in message
    assert f"pip install 'apache-airflow>={MIN_AIRFLOW_VERSION}'" in message


def test_importing_an_operator_on_an_older_airflow_raises_that_one_error() -> None:
    """A fresh interpreter whose Airflow reports 3.1.8: the provider's first import fails clearly."""
    code = textwrap.dedent("""
        import airflow
        airflow.__version__ = "3.1.8"
        try:
            import airflow_pywren.operators.pywren
        except RuntimeError as exc:
            print("RuntimeError:", exc)
        else:
            print("imported")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == (
        f"RuntimeError: the airflow-pywren provider needs Apache Airflow {MIN_AIRFLOW_VERSION} or newer, but Airflow "
        f"3.1.8 is installed: upgrade it (pip install 'apache-airflow>={MIN_AIRFLOW_VERSION}')"
    )
