"""One running Airflow with its UI for the whole UI test session, and one headless Chromium.

The deployment (API server with the UI and the plugin, scheduler, triggerer; SQLite, all on
127.0.0.1) runs the ``pywren_ui`` DAG and the small ``pywren_ui_other`` DAG once; its
``gated_map`` task keeps two calls running until a test opens the gate. Its auth manager
(``tests/ui/auth``) lets the user ``other`` read ``pywren_ui_other`` only. Screenshots go to
``tests/ui/artifacts/`` (not committed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.airflow import AirflowDeployment
from tests.ui.dag_source import DAG_ID, OTHER_DAG_ID, OTHER_SOURCE, SOURCE

ARTIFACTS = Path(__file__).with_name("artifacts")
AUTH_DIR = Path(__file__).with_name("auth")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
OTHER_USER = "other"
USERS = f"admin:admin,viewer:viewer,{OTHER_USER}:viewer"
FINAL = ("success", "failed", "upstream_failed", "skipped")
SECRET = "ui-test-broker-secret"


class UI:
    """The running deployment, its DAG run and the gate of ``gated_map``."""

    def __init__(self, deployment: AirflowDeployment, gate: Path, storage_dir: Path) -> None:
        self.deployment = deployment
        self.gate = gate
        self.storage_dir = storage_dir
        self.run_ids: dict[str, str] = {}

    @property
    def run_id(self) -> str:
        """The run of ``pywren_ui``."""
        return self.run_ids[DAG_ID]

    @property
    def url(self) -> str:
        return self.deployment.url

    def states(self, dag_id: str = DAG_ID) -> dict[tuple[str, int], str]:
        rows = self.deployment.query("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", dag_id)
        return {(task_id, map_index): state for task_id, map_index, state in rows}

    def wait_for_states(self, predicate: Any, timeout: float = 300, dag_id: str = DAG_ID) -> dict[tuple[str, int], str]:
        deadline = time.monotonic() + timeout
        while True:
            self.deployment._check_alive()
            states = self.states(dag_id)
            if predicate(states):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"task instances did not get there within {timeout:g} s: {states}")
            time.sleep(0.5)

    def job_query(self, task_id: str, map_index: int = -1, dag_id: str = DAG_ID) -> str:
        from urllib.parse import urlencode

        run_id = self.run_ids[dag_id]
        return urlencode({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index})


@pytest.fixture(scope="session")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    root = tmp_path_factory.mktemp("ui-airflow")
    (root / "dags").mkdir()
    (root / "airflow").mkdir()
    gate = root / "gate"
    (root / "dags" / f"{DAG_ID}.py").write_text(SOURCE.replace("{gate}", str(gate)))
    (root / "dags" / f"{OTHER_DAG_ID}.py").write_text(OTHER_SOURCE)
    storage_dir = root / "pywren" / "storage"
    config = {
        "pywren": {"monitor_interval": 0.05},
        "localhost": {"storage_dir": str(storage_dir), "runner_dir": str(root / "pywren" / "runner"), "workers": 4},
    }
    config["rabbitmq"] = {"amqp_url": f"amqp://pywren:{SECRET}@127.0.0.1:5999/"}  # never used, never shown
    connection = {"conn_type": "pywren", "extra": {"config": config}}
    extra_env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__AUTH_MANAGER": "dag_access_auth_manager.DagAccessAuthManager",
        "AIRFLOW__PYWREN_TEST_AUTH__DAG_ACCESS": f"{OTHER_USER}:{OTHER_DAG_ID}",
        "HOME": str(root / "home"),
    }
    with AirflowDeployment(
        root / "airflow", root / "dags", {"pywren_default": connection}, parallelism=4, extra_env=extra_env, apps="all"
    ) as deployment:
        path = deployment.env.get("PYTHONPATH")
        deployment.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(AUTH_DIR), path) if p)
        deployment.start(timeout=300)  # a busy machine: the API server with the UI starts slowly
        ui = UI(deployment, gate, storage_dir)
        token = deployment.token("admin")
        for dag_id in (DAG_ID, OTHER_DAG_ID):
            status, body = deployment.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token)
            assert status == 200, body
            status, body = deployment.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None}, token)
            assert status == 200, body
            ui.run_ids[dag_id] = body["dag_run_id"]
        try:
            yield ui
        finally:
            gate.touch()
            from airflow_pywren.executor.compute.localhost import stop_runners

            stop_runners(root / "pywren" / "runner")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1500,1000",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, ui: UI, username: str) -> None:
    """Open the server, then set the UI's ``_token`` cookie to a JWT of ``username``."""
    driver.get(ui.url + "/pywren/static/pywren.css")
    driver.add_cookie({"name": "_token", "value": ui.deployment.token(username), "path": "/"})


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
