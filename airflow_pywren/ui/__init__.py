"""The PyWren plugin for the Airflow UI: a job view on task instances, a jobs page and their JSON API.

Installing the package registers :class:`~airflow_pywren.ui.plugin.PyWrenPlugin` through the
``airflow.plugins`` entry point; the API server mounts its app under ``/pywren``.
"""
