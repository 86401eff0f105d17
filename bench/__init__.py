"""Benchmarks of airflow-pywren; run ``python -m bench``."""
