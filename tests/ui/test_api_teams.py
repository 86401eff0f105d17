"""Which DAGs the jobs list shows in a multi-team deployment: each DAG is checked with its team.

The teams come from a real (in-memory SQLite) Airflow metadata schema: DAGs belong to a team
through their DAG bundle. Airflow's simple auth manager refuses a non-admin user a DAG of a
team the user is not in, but only when it is told the DAG's team.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.team import Team, dag_bundle_team_association_table
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from airflow_pywren.ui import api

DAG_TEAMS = {"sales_report": "sales", "ops_cleanup": "ops", "shared_sync": None}


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    tables = [DagBundleModel.__table__, Team.__table__, dag_bundle_team_association_table, DagModel.__table__]
    DagModel.metadata.create_all(engine, tables=tables)
    with Session(engine) as session:
        teams = {name: Team(name=name) for name in ("sales", "ops")}
        bundles = {}
        for team in (*teams, None):
            bundle = DagBundleModel(name=f"bundle_{team or 'shared'}")
            if team:
                bundle.teams.append(teams[team])
            bundles[team] = bundle
            session.add(bundle)
        for dag_id, team in DAG_TEAMS.items():
            session.add(DagModel(dag_id=dag_id, bundle_name=bundles[team].name, fileloc=f"/dags/{dag_id}.py"))
        session.commit()
        yield session
    engine.dispose()


@pytest.fixture(autouse=True)
def simple_auth_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "get_auth_manager", SimpleAuthManager)


def _user(role: str, teams: list[str] | None) -> Any:
    return SimpleAuthManagerUser(username=f"{role}-{teams}", role=role, teams=teams)


def test_a_team_member_sees_the_dags_of_their_team_and_dags_of_no_team(session: Session) -> None:
    assert DagModel.get_team_name("sales_report", session=session) == "sales"  # what the job endpoints check
    dag_ids = set(DAG_TEAMS)
    assert api.readable_dag_ids(_user("viewer", ["sales"]), dag_ids, session) == {"sales_report", "shared_sync"}
    assert api.readable_dag_ids(_user("viewer", ["ops"]), dag_ids, session) == {"ops_cleanup", "shared_sync"}
    assert api.readable_dag_ids(_user("viewer", ["sales", "ops"]), dag_ids, session) == dag_ids
    assert api.readable_dag_ids(_user("admin", []), dag_ids, session) == dag_ids


def test_a_dag_unknown_to_the_metadata_is_checked_without_a_team(session: Session) -> None:
    assert api.readable_dag_ids(_user("viewer", ["ops"]), {"deleted_dag", "sales_report"}, session) == {"deleted_dag"}
    assert api.readable_dag_ids(_user("viewer", ["ops"]), set(), session) == set()
