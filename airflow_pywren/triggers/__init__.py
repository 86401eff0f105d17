"""Airflow triggers that follow PyWren jobs from the triggerer."""

from airflow_pywren.triggers.pywren import PyWrenJobTrigger

__all__ = ["PyWrenJobTrigger"]
