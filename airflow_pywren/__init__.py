"""airflow-pywren: massively parallel Python from Apache Airflow, with the PyWren API.

``import airflow_pywren as pywren; pw = pywren.ibm_cf_executor()`` needs no Airflow;
the Airflow hook, operators, sensors and triggers live in the sub-packages of the same name.
"""

from airflow_pywren import executor as _executor
from airflow_pywren.executor import *  # noqa: F403 - the executor's public names are the package's
from airflow_pywren.version import __version__

__all__ = [*_executor.__all__, "__version__"]
