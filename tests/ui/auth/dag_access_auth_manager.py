"""An auth manager for the UI tests that restricts named users to named DAGs.

Airflow's simple auth manager decides on roles (and teams) only, never on a DAG id; a real
deployment grants per-DAG access with FAB's DAG permissions or its identity provider. This
subclass stands in for that: ``[pywren_test_auth] dag_access`` (for example
``AIRFLOW__PYWREN_TEST_AUTH__DAG_ACCESS=alice:dag_a|dag_b,bob:dag_c``) lists, per user, the
only DAGs that user may see; users not listed keep their role's access. The API server finds
this module on its PYTHONPATH (``tests/ui/auth``, set by the UI fixture).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.configuration import conf


def dag_access() -> dict[str, set[str]]:
    """``{username: DAG ids}`` from ``[pywren_test_auth] dag_access``."""
    access: dict[str, set[str]] = {}
    for entry in conf.get("pywren_test_auth", "dag_access", fallback="").split(","):
        if entry.strip():
            username, _, dag_ids = entry.strip().partition(":")
            access[username] = {dag_id for dag_id in dag_ids.split("|") if dag_id}
    return access


class DagAccessAuthManager(SimpleAuthManager):
    """The simple auth manager, plus per-user DAG lists checked on every DAG with an id."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        allowed = dag_access().get(user.username)
        if allowed is not None and details is not None and details.id and details.id not in allowed:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
