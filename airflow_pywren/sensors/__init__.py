"""Airflow sensors that wait for PyWren jobs."""

from airflow_pywren.sensors.pywren import PyWrenJobSensor

__all__ = ["PyWrenJobSensor"]
