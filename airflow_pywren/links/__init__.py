"""Airflow extra links of the PyWren provider."""
