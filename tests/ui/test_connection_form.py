"""The ``pywren`` connection in the Airflow UI: the "Test" button, the form's fields and JSON editor, the Providers page."""

from __future__ import annotations

import json

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import UI, screenshot, sign_in

pytestmark = [pytest.mark.airflow, pytest.mark.ui, pytest.mark.timeout(600)]

CAPTURE_REQUESTS = """
window.__requests = [];
const send = XMLHttpRequest.prototype.send, open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url) { this.__url = url; return open.apply(this, arguments); };
XMLHttpRequest.prototype.send = function (body) {
  this.addEventListener("load", () => window.__requests.push({url: String(this.__url), body, status: this.status,
                                                              response: this.responseText}));
  return send.apply(this, arguments);
};
"""


def _wait(driver, seconds: float = 90) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.3)


def _save_connection(ui: UI, conn_id: str, extra: dict) -> None:
    token = ui.deployment.token("admin")
    ui.deployment.request("DELETE", f"/api/v2/connections/{conn_id}", token=token)
    status, body = ui.deployment.request(
        "POST",
        "/api/v2/connections",
        {"connection_id": conn_id, "conn_type": "pywren", "extra": json.dumps(extra)},
        token,
    )
    assert status == 201, body


def _storage_extra(ui: UI) -> dict:
    return {"localhost_storage_dir": str(ui.storage_dir), "localhost_workers": 2}


def test_test_button_request_of_a_saved_connection_succeeds(ui: UI) -> None:
    """What the connection list's "Test" button sends (a hidden, unset port comes as 0) is accepted and tested."""
    _save_connection(ui, "pw_saved", _storage_extra(ui))
    token = ui.deployment.token("admin")
    body = {
        "conn_type": "pywren",
        "connection_id": "pw_saved",
        "description": "",
        "host": "",
        "login": "",
        "password": "",
        "port": 0,
        "schema": "",
        "extra": json.dumps(_storage_extra(ui)),
    }
    status, answer = ui.deployment.request("POST", "/api/v2/connections/test", body, token)
    assert status == 200, answer
    assert answer["status"] is True and "is writable and readable" in answer["message"], answer


def test_test_button_names_the_form_labels_of_a_bad_setting(ui: UI) -> None:
    _save_connection(ui, "pw_bad", {"storage_backend": "ibm_cos", "cos_bucket": "b"})
    body = {
        "conn_type": "pywren",
        "connection_id": "pw_bad",
        "port": 0,
        "extra": json.dumps({"storage_backend": "ibm_cos", "cos_bucket": "b"}),
    }
    status, answer = ui.deployment.request("POST", "/api/v2/connections/test", body, ui.deployment.token("admin"))
    assert status == 200 and answer["status"] is False, answer
    assert "Storage backend 'ibm_cos' needs 'COS endpoint' (ibm_cos.endpoint)" in answer["message"], answer


def test_form_metadata_has_no_null_values_and_saving_drops_nulls(ui: UI) -> None:
    token = ui.deployment.token("admin")
    status, hooks = ui.deployment.request("GET", "/ui/connections/hook_meta", token=token)
    assert status == 200
    (pywren,) = [hook for hook in hooks if hook["connection_type"] == "pywren"]
    fields = pywren["extra_fields"]
    assert fields["compute_backend"]["schema"]["enum"] == ["localhost", "ibm_cf", "k8s", "code_engine"]
    assert fields["compute_backend"]["value"] == fields["storage_backend"]["value"] == "localhost"
    assert not [name for name, field in fields.items() if "value" in field and field["value"] is None]
    assert {"localhost_storage_dir", "localhost_workers"} <= set(fields)
    ui.deployment.request("DELETE", "/api/v2/connections/pw_nulls", token=token)
    extra = {"compute_backend": "localhost", "runtime": None, "cos_bucket": "", "localhost_workers": 3}
    status, saved = ui.deployment.request(
        "POST",
        "/api/v2/connections",
        {"connection_id": "pw_nulls", "conn_type": "pywren", "extra": json.dumps(extra)},
        token,
    )
    assert status == 201, saved
    assert json.loads(saved["extra"]) == {"compute_backend": "localhost", "localhost_workers": 3}


def test_connection_list_test_button_shows_success(ui: UI, browser) -> None:
    _save_connection(ui, "pw_button", _storage_extra(ui))
    sign_in(browser, ui, "admin")
    browser.get(f"{ui.url}/connections")
    row = _wait(browser).until(ec.presence_of_element_located((By.XPATH, "//tr[.//*[normalize-space()='pw_button']]")))
    browser.execute_script(CAPTURE_REQUESTS)
    row.find_element(By.CSS_SELECTOR, "button[aria-label='Test Connection']").click()
    tests = _wait(browser).until(
        lambda d: [r for r in d.execute_script("return window.__requests") if r["url"].endswith("/connections/test")]
    )
    sent = json.loads(tests[0]["body"])
    assert sent["port"] == 0  # what the UI sends for the hidden port...
    assert tests[0]["status"] == 200, tests[0]  # ...and the test runs anyway
    assert json.loads(tests[0]["response"])["status"] is True, tests[0]
    screenshot(browser, "connection-test")


def _open_section(driver, name: str, shows: tuple[str, str]) -> None:
    """Open a section of the connection dialog (clicked until what it shows is visible: the form re-renders)."""

    def opened(d) -> bool:
        try:
            if any(element.is_displayed() for element in d.find_elements(*shows)):
                return True
            button = d.find_element(By.XPATH, f"//*[@role='dialog']//button[normalize-space()='{name}']")
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
            button.click()
        except WebDriverException:
            pass
        return False

    _wait(driver).until(opened)


def _select_options(driver, field: str) -> list[str]:
    """The options a select of the form offers (opened with the keyboard, closed by leaving it)."""

    def options(d) -> list[str] | None:
        try:
            box = d.find_element(By.CSS_SELECTOR, f"#element_{field} input[role=combobox]")
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
            if box.get_attribute("aria-expanded") != "true":
                d.execute_script("arguments[0].focus()", box)
                box.send_keys(Keys.ARROW_DOWN)
            return [o.text for o in d.find_elements(By.CSS_SELECTOR, f"#element_{field} [id*='-option-']")] or None
        except StaleElementReferenceException:
            return None

    found = _wait(driver).until(options)
    box = driver.find_element(By.CSS_SELECTOR, f"#element_{field} input[role=combobox]")
    driver.execute_script("arguments[0].blur()", box)
    return found


def _editor_text(driver) -> str:
    script = "return Array.from(document.querySelectorAll('[role=dialog] .view-lines')).map(e => e.innerText)"
    return _wait(driver).until(lambda d: "".join(d.execute_script(script)).replace("\xa0", " ").strip() or None)


def test_add_form_offers_real_backends_prefills_no_nulls_and_saves_none(ui: UI, browser) -> None:
    token = ui.deployment.token("admin")
    ui.deployment.request("DELETE", "/api/v2/connections/pw_form", token=token)
    sign_in(browser, ui, "admin")
    browser.get(f"{ui.url}/connections")
    _wait(browser).until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']"))).click()
    dialog = _wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role='dialog']")))
    dialog.find_element(By.CSS_SELECTOR, "input[name='connection_id']").send_keys("pw_form")
    kind = dialog.find_element(By.CSS_SELECTOR, "input[role='combobox']")
    kind.click()
    kind.send_keys("PyWren")
    _wait(browser).until(
        ec.element_to_be_clickable((By.XPATH, "//*[@role='option'][normalize-space()='PyWren']"))
    ).click()

    _open_section(browser, "Extra Fields", (By.NAME, "element_localhost_workers"))
    assert _select_options(browser, "compute_backend") == ["localhost", "ibm_cf", "k8s", "code_engine"]
    assert _select_options(browser, "storage_backend") == ["localhost", "ibm_cos"]
    assert "Local storage directory" in dialog.text and "Local workers" in dialog.text
    workers = browser.find_element(By.NAME, "element_localhost_workers")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", workers)
    workers.click()
    workers.send_keys("3")
    browser.execute_script("arguments[0].blur()", workers)

    _open_section(browser, "Extra Fields JSON", (By.CSS_SELECTOR, "[role=dialog] .view-lines"))
    text = _editor_text(browser)
    assert '"compute_backend": "localhost"' in text and '"localhost_workers": 3' in text, text
    assert "null" not in text, text
    screenshot(browser, "connection-form")
    # the optional fields left empty do not block saving (a required field would keep Save disabled)
    _wait(browser).until(
        ec.element_to_be_clickable((By.XPATH, "//*[@role='dialog']//button[normalize-space()='Save']"))
    ).click()
    _wait(browser).until(ec.invisibility_of_element_located((By.CSS_SELECTOR, "[role='dialog']")))

    status, saved = ui.deployment.request("GET", "/api/v2/connections/pw_form", token=token)
    assert status == 200, saved
    extra = json.loads(saved["extra"])
    assert extra == {"compute_backend": "localhost", "storage_backend": "localhost", "localhost_workers": 3}, extra
    assert not [key for key, value in extra.items() if value is None]


def test_providers_page_shows_the_description(ui: UI, browser) -> None:
    sign_in(browser, ui, "viewer")
    browser.get(f"{ui.url}/providers")
    _wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "airflow-pywren"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "single calls, maps and map-reduce jobs on IBM Cloud Functions / Apache OpenWhisk" in body, body[-2000:]
