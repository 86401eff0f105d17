"""Access control of the PyWren plugin per DAG, in the running Airflow of ``conftest.py``.

The deployment's auth manager lets the user ``other`` read the ``pywren_ui_other`` DAG only
(as FAB's per-DAG permissions would); ``viewer`` reads every DAG.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import OTHER_USER, UI, sign_in
from tests.ui.dag_source import DAG_ID, OTHER_DAG_ID

pytestmark = [pytest.mark.airflow, pytest.mark.ui, pytest.mark.timeout(600)]

DONE = ("success", "failed")


def _both_jobs_finished(ui: UI) -> None:
    ui.wait_for_states(lambda s: s.get(("failing_map", -1)) in DONE)
    ui.wait_for_states(lambda s: s.get(("double_map", -1)) in DONE, dag_id=OTHER_DAG_ID)


def _job_paths(query: str) -> list[str]:
    return [f"/pywren/api/job?{query}", f"/pywren/api/job/calls?{query}", f"/pywren/api/job/result?{query}&index=0"]


def test_user_allowed_one_dag_reads_its_job_and_is_refused_the_others(ui: UI) -> None:
    _both_jobs_finished(ui)
    token = ui.deployment.token(OTHER_USER)
    allowed = ui.job_query("double_map", dag_id=OTHER_DAG_ID)
    refused = ui.job_query("failing_map")
    status, body = ui.deployment.request("GET", f"/pywren/api/job?{allowed}", token=token)
    assert status == 200, body
    assert (body["dag_id"], body["view_state"], body["summary"]["total"]) == (OTHER_DAG_ID, "ok", 3)
    status, preview = ui.deployment.request("GET", f"/pywren/api/job/result?{allowed}&index=2", token=token)
    assert (status, preview.get("value")) == (200, 6), preview
    for path in _job_paths(allowed):
        assert ui.deployment.request("GET", path, token=token)[0] == 200, path
        assert ui.deployment.request("GET", path)[0] == 401, path  # anonymous
    for path in _job_paths(refused):
        status, body = ui.deployment.request("GET", path, token=token)
        assert status == 403, (path, body)
        assert "failing_map" not in str(body) and "M000" not in str(body)
    # the same auth manager decides for Airflow's own API: the plugin asks it, it does not decide alone
    assert ui.deployment.request("GET", f"/api/v2/dags/{DAG_ID}", token=token)[0] == 403
    assert ui.deployment.request("GET", f"/api/v2/dags/{OTHER_DAG_ID}", token=token)[0] == 200
    for path in _job_paths(refused):  # a user of every DAG reads both
        status, body = ui.deployment.request("GET", path, token=ui.deployment.token("viewer"))
        assert status == 200, (path, body)


def test_jobs_list_shows_a_user_only_the_jobs_of_dags_they_may_read(ui: UI) -> None:
    _both_jobs_finished(ui)
    status, everyone = ui.deployment.request("GET", "/pywren/api/jobs", token=ui.deployment.token("viewer"))
    assert status == 200, everyone
    assert {DAG_ID, OTHER_DAG_ID} <= {row["dag_id"] for row in everyone["jobs"]}
    status, body = ui.deployment.request("GET", "/pywren/api/jobs", token=ui.deployment.token(OTHER_USER))
    assert status == 200, body
    assert [(row["dag_id"], row["task_id"]) for row in body["jobs"]] == [(OTHER_DAG_ID, "double_map")]
    assert body["total"] == 1
    assert ui.deployment.request("GET", "/pywren/api/jobs")[0] == 401


def test_job_view_and_jobs_page_of_a_user_allowed_one_dag(ui: UI, browser) -> None:
    _both_jobs_finished(ui)
    wait = WebDriverWait(browser, 60, poll_frequency=0.2)
    sign_in(browser, ui, OTHER_USER)
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('failing_map')}")
    state = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#pw-state[data-state='error']")))
    assert state.text.startswith("You may not read this DAG's task instances (403")
    assert not browser.find_element(By.ID, "pw-job").is_displayed()
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('double_map', dag_id=OTHER_DAG_ID)}")
    wait.until(ec.text_to_be_present_in_element((By.ID, "pw-done"), "3"))
    assert browser.find_element(By.ID, "pw-total").text == "3"
    browser.get(f"{ui.url}/pywren/jobs")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.job-row"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.job-row")
    assert [(row.get_attribute("data-dag"), row.get_attribute("data-task")) for row in rows] == [
        (OTHER_DAG_ID, "double_map")
    ]
