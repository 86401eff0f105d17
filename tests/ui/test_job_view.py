"""The PyWren plugin in a running Airflow: its JSON API, access control, extra links, and the pages in Chromium.

One deployment and one DAG run serve every test (see ``conftest.py``); tests that need
finished task instances wait for them, the running-job test opens the gate of ``gated_map``.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import SECRET, UI, screenshot, sign_in
from tests.ui.dag_source import DAG_ID

pytestmark = [pytest.mark.airflow, pytest.mark.ui, pytest.mark.timeout(600)]

DONE = ("success", "failed")


def _finished(*task_ids: str):
    return lambda states: all(states.get((task_id, -1)) in DONE for task_id in task_ids)


def _api(ui: UI, path: str, token: str | None) -> tuple[int, dict]:
    return ui.deployment.request("GET", path, token=token)


def _wait(driver, seconds: float = 60) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.2)


def _text_is(driver, element_id: str, text: str, seconds: float = 60) -> None:
    _wait(driver, seconds).until(ec.text_to_be_present_in_element((By.ID, element_id), text))
    assert driver.find_element(By.ID, element_id).text == text


def test_plugin_is_registered_with_its_views_and_no_import_error(ui: UI) -> None:
    token = ui.deployment.token("admin")
    status, body = _api(ui, "/api/v2/plugins", token)
    assert status == 200, body
    (plugin,) = [p for p in body["plugins"] if p["name"] == "pywren"]
    views = {view["url_route"]: view for view in plugin["external_views"]}
    assert views["pywren-job"]["destination"] == "task_instance"
    assert views["pywren-job"]["href"].startswith("/pywren/job?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}")
    assert views["pywren-jobs"]["destination"] == "nav"
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == ["/pywren"]
    status, errors = _api(ui, "/api/v2/plugins/importErrors", token)
    assert (status, errors["import_errors"]) == (200, [])


def test_api_refuses_anonymous_users_and_bad_tokens_and_shows_no_secret(ui: UI) -> None:
    ui.wait_for_states(_finished("failing_map"))
    query = ui.job_query("failing_map")
    for path in (
        f"/pywren/api/job?{query}",
        f"/pywren/api/job/calls?{query}",
        f"/pywren/api/job/result?{query}&index=0",
        "/pywren/api/jobs",
    ):
        assert _api(ui, path, None)[0] == 401, path
        assert _api(ui, path, "not-a-jwt")[0] == 403, path
    status, body = _api(ui, f"/pywren/api/job?{query}", ui.deployment.token("viewer"))
    assert status == 200, body
    assert body.get("view_state") == "ok", body
    assert (body["summary"]["total"], body["summary"]["failed"]) == (8, 1)
    status, jobs = _api(ui, "/pywren/api/jobs", ui.deployment.token("viewer"))
    assert status == 200 and any(row["task_id"] == "failing_map" for row in jobs["jobs"])
    for answer in (body, jobs):
        text = json.dumps(answer)
        assert SECRET not in text and "amqp" not in text


def test_api_reads_mapped_decorated_and_sensor_task_instances(ui: UI) -> None:
    ui.wait_for_states(
        lambda s: all(
            s.get(key) in DONE
            for key in (("mapped_call", 0), ("mapped_call", 1), ("hello", -1), ("sense", -1), ("deferred_map", -1))
        )
    )
    token = ui.deployment.token("viewer")
    expected = {
        ("mapped_call", 1): ("call_async", 1, 16),
        ("hello", -1): ("call_async", 1, "hello airflow"),
        ("sense", -1): ("call_async", 1, 49),
        ("deferred_map", -1): ("map", 6, 25),
    }
    for (task_id, map_index), (kind, total, value) in expected.items():
        query = ui.job_query(task_id, map_index)
        status, body = _api(ui, f"/pywren/api/job?{query}", token)
        assert status == 200 and body["view_state"] == "ok", body
        summary = body["summary"]
        assert (summary["kind"], summary["total"], summary["success"], summary["status"]) == (
            kind,
            total,
            total,
            "success",
        )
        status, preview = _api(ui, f"/pywren/api/job/result?{query}&index={total - 1}", token)
        assert (status, preview["available"], preview.get("value")) == (200, True, value), preview
    submit = _api(ui, f"/pywren/api/job?{ui.job_query('submit')}", token)[1]["summary"]
    sense = _api(ui, f"/pywren/api/job?{ui.job_query('sense')}", token)[1]["summary"]
    assert (sense["executor_id"], sense["job_ids"]) == (submit["executor_id"], submit["job_ids"])  # the watched job


def test_extra_link_of_operators_and_sensor_opens_the_job_view(ui: UI) -> None:
    ui.wait_for_states(_finished("failing_map", "sense", "deferred_map"))
    token = ui.deployment.token("viewer")
    run = quote(ui.run_id, safe="")
    for task_id in ("failing_map", "deferred_map", "sense"):
        status, body = _api(ui, f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{task_id}/links", token)
        assert status == 200, body
        assert (
            body["extra_links"]["PyWren Job"] == f"{ui.url}/dags/{DAG_ID}/runs/{run}/tasks/{task_id}/plugin/pywren-job"
        )
    status, body = _api(ui, f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/mapped_call/links?map_index=1", token)
    assert body["extra_links"]["PyWren Job"].endswith("/tasks/mapped_call/mapped/1/plugin/pywren-job"), body


def test_job_view_tab_shows_the_failed_call_its_traceback_and_the_timeline(ui: UI, browser) -> None:
    ui.wait_for_states(_finished("failing_map"))
    sign_in(browser, ui, "viewer")
    link = _api(
        ui,
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(ui.run_id, safe='')}/taskInstances/failing_map/links",
        ui.deployment.token("viewer"),
    )[1]["extra_links"]["PyWren Job"]
    browser.get(link)  # the task instance page of the Airflow UI, with the PyWren job tab open
    _wait(browser, 90).until(ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='PyWren job']")))
    _text_is(browser, "pw-failed", "1")
    assert (browser.find_element(By.ID, "pw-done").text, browser.find_element(By.ID, "pw-total").text) == ("8", "8")
    assert browser.find_element(By.ID, "pw-title").text == "PyWren map job M000"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pw-timeline rect.pw-bar")) == 8
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pw-timeline rect.pw-bar.error")) == 1
    failed = browser.find_element(By.CSS_SELECTOR, "tr.call-row[data-status='error']")
    assert "ValueError: item 5 is not allowed here" in failed.text
    assert failed.get_attribute("data-index") == "5"
    browser.find_element(By.ID, "pw-failed-only").click()
    _wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.call-row")) == 1)
    browser.find_element(By.CSS_SELECTOR, "tr.call-row.has-error").click()
    traceback = _wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "tr.traceback-row pre")))
    assert 'raise ValueError(f"item {x} is not allowed here")' in traceback.text
    browser.switch_to.default_content()
    screenshot(browser, "job-view-failed")


def test_job_view_refreshes_while_the_job_runs(ui: UI, browser) -> None:
    ui.wait_for_states(lambda s: s.get(("gated_map", -1)) == "running")
    sign_in(browser, ui, "viewer")
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('gated_map')}")
    _text_is(browser, "pw-done", "2", seconds=120)  # calls 0 and 1 finish, 2 and 3 wait for the gate
    _text_is(browser, "pw-running", "2")
    assert browser.find_element(By.ID, "pw-total").text == "4"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pw-timeline rect.pw-bar.running")) == 2
    screenshot(browser, "job-view-running")
    ui.gate.touch()
    _text_is(browser, "pw-done", "4", seconds=120)  # the page refreshes by itself
    _text_is(browser, "pw-running", "0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pw-timeline rect.pw-bar.success")) == 4


def test_cleaned_job_says_its_results_were_cleaned(ui: UI, browser) -> None:
    ui.wait_for_states(_finished("clean"))
    status, body = _api(ui, f"/pywren/api/job?{ui.job_query('cleaned_map')}", ui.deployment.token("viewer"))
    assert (status, body["view_state"]) == (200, "cleaned"), body
    assert (body["job"]["total"], body["job"]["status"]) == (2, "success")  # what the task recorded
    sign_in(browser, ui, "viewer")
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('cleaned_map')}")
    state = _wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#pw-state[data-state='cleaned']")))
    assert state.text.startswith("The results were cleaned")


def test_jobs_page_lists_recent_jobs_and_links_to_their_views(ui: UI, browser) -> None:
    ui.wait_for_states(_finished("failing_map", "deferred_map", "hello"))
    sign_in(browser, ui, "viewer")
    browser.get(f"{ui.url}/plugin/pywren-jobs")  # the navigation entry of the Airflow UI
    _wait(browser, 90).until(
        ec.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='PyWren jobs']"))
    )
    _wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.job-row")) >= 8)
    row = browser.find_element(By.CSS_SELECTOR, "tr.job-row[data-task='failing_map']")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert (cells[2], cells[3], cells[4], cells[5]) == ("failed", "map M000", "8", "1")
    browser.switch_to.default_content()
    screenshot(browser, "jobs-page")
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='PyWren jobs']"))
    row.find_element(By.CSS_SELECTOR, "a.job-link").click()
    _text_is(browser, "pw-failed", "1")


def test_anonymous_browser_is_asked_to_sign_in(ui: UI, browser) -> None:
    browser.get(f"{ui.url}/pywren/static/pywren.css")
    browser.delete_all_cookies()
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('failing_map')}")
    state = _wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#pw-state[data-state='error']")))
    assert "Sign in to Airflow" in state.text
    assert not browser.find_element(By.ID, "pw-job").is_displayed()


def test_job_view_of_a_10000_call_job_pages_its_calls_and_samples_its_timeline(ui: UI, browser) -> None:
    ui.wait_for_states(_finished("large_map"), timeout=540)
    status, body = _api(ui, f"/pywren/api/job?{ui.job_query('large_map')}", ui.deployment.token("viewer"))
    assert status == 200 and body["summary"]["done"] == 10_000, body.get("summary")
    timeline = body["timeline"]
    assert (timeline["started"], timeline["sampled"], len(timeline["calls"])) == (10_000, True, 2000)
    assert len(timeline["running"]) <= 1000 and len(json.dumps(timeline)) < 150_000
    sign_in(browser, ui, "viewer")
    browser.get(f"{ui.url}/pywren/job?{ui.job_query('large_map')}")
    _text_is(browser, "pw-done", "10,000", seconds=120)
    assert [
        browser.find_element(By.ID, name).text for name in ("pw-total", "pw-running", "pw-pending", "pw-failed")
    ] == [
        "10,000",
        "0",
        "0",
        "0",
    ]
    assert browser.find_element(By.ID, "pw-status").text == "job success"
    assert browser.find_element(By.ID, "pw-timeline-sample").text.startswith("showing 2,000 of 10,000 calls")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pw-timeline rect.pw-bar.success")) == 2000
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.call-row")
    assert [row.get_attribute("data-index") for row in rows] == [str(i) for i in range(50)]
    assert browser.find_element(By.ID, "pw-page").text == "calls 1–50 of 10,000"
    screenshot(browser, "job-view-large")
    browser.find_element(By.ID, "pw-next").click()
    _text_is(browser, "pw-page", "calls 51–100 of 10,000")
    browser.find_element(By.ID, "pw-last").click()
    _text_is(browser, "pw-page", "calls 9,951–10,000 of 10,000")
    last = browser.find_elements(By.CSS_SELECTOR, "tr.call-row")[-1]
    cells = [cell.text for cell in last.find_elements(By.TAG_NAME, "td")]
    assert (cells[0], cells[1], cells[2]) == ("9999", "M000/09999", "success")
    assert browser.find_element(By.ID, "pw-next").get_attribute("disabled") == "true"
    last.find_element(By.CSS_SELECTOR, "button.pw-result").click()
    _wait(browser).until(lambda d: last.find_element(By.CSS_SELECTOR, ".preview").text == str(9999 * 9999))
    screenshot(browser, "job-view-large-last-page")
