"""The pages as a person uses them, in headless Chromium against the `all` function as a real server.

/docs: start seed example 1 through Swagger UI's "Try it out". /ui: the queue
and its 6 jobs, progress that moves when telemetry arrives (no reload),
keyboard navigation, stop. Screenshots go to test-output/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends import BACKENDS, fresh_all
from tests.servers import ROOT, FunctionServer, base_env
from tests.ui.browser import chromium, require_chromium

pytestmark = pytest.mark.browser
OUT = ROOT / "test-output"
WAIT_S = 20


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh `all` per test, on each state backend."""
    with fresh_all(request.param, tmp_path) as srv:
        yield srv


@pytest.fixture
def browser(tmp_path: Path):
    require_chromium()
    OUT.mkdir(exist_ok=True)
    with chromium() as driver:
        yield driver


def _wait(driver, condition, message: str, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d), message)
    except Exception:
        driver.save_screenshot(str(OUT / "failure.png"))
        logs = driver.get_log("browser")
        raise AssertionError(f"{message}; browser log: {logs}; screenshot: test-output/failure.png") from None


def _start_through_swagger(driver, url: str) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(url + "/docs")
    op = _wait(driver, lambda d: d.find_elements(By.ID, "operations-queues-startQueue"),
               "Swagger UI did not render POST /queues/start")[0]
    op.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    _wait(driver, lambda d: op.find_elements(By.CSS_SELECTOR, ".try-out__btn"), "no Try it out button")[0].click()
    body = lambda: op.find_element(By.CSS_SELECTOR, "textarea.body-param__text").get_attribute("value")  # noqa: E731
    examples = Select(_wait(driver, lambda d: op.find_elements(By.CSS_SELECTOR, "select.examples-select-element"),
                            "no named examples on the request body")[0])
    assert [o.get_attribute("value") for o in examples.options] == ["historical", "realtime", "legacy"]
    examples.select_by_value("legacy")
    _wait(driver, lambda d: "requests" not in body(), "the legacy example did not fill the body")
    examples.select_by_value("historical")
    _wait(driver, lambda d: "api_candles_5m" in body(), "the historical example did not fill the body")
    assert len(json.loads(body())["requests"]) == 6
    op.find_element(By.CSS_SELECTOR, "button.execute").click()
    shown = _wait(driver, lambda d: op.find_elements(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre.microlight"),
        "no response after Execute")[0]
    code = op.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status").text.strip()
    assert code == "200", shown.text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", shown)
    driver.save_screenshot(str(OUT / "docs-try-it-out.png"))
    return json.loads(shown.text)


def test_docs_start_then_dashboard_follows_it_live(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    reply = _start_through_swagger(browser, server.url)
    assert reply["message"] == "Queue started" and len(reply["data"]["jobs"]) == 6
    queue_id = reply["data"]["queue_id"]
    first_job = reply["data"]["jobs"][0]["id"]

    browser.get(server.url + "/ui")
    row = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'button[data-queue-id="{queue_id}"]'),
                "the queue is not in the list")[0]
    assert "loading" in row.text and "BTCUSDT" in row.text
    row.click()
    cards = _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stages .job")) == 6
                  and d.find_elements(By.CSS_SELECTOR, "#stages .job"), "the queue's 6 jobs are not shown")
    assert browser.find_element(By.ID, "detail-heading").text == "BTCUSDT · 2024-06-01:2024-06-30"
    _wait(browser, lambda d: d.find_element(By.ID, "live-state").text == "Live", "the live stream did not open")
    waiting = [c.find_element(By.CSS_SELECTOR, ".job-waiting").text for c in cards]
    assert any(w.startswith("Waiting: waiting for inputs") for w in waiting), waiting
    card = browser.find_element(By.CSS_SELECTOR, f'[data-job-id="{first_job}"]')
    bar = card.find_element(By.CSS_SELECTOR, '[role="progressbar"]')
    assert bar.get_attribute("aria-valuenow") == "0"

    browser.execute_script("window.__sameDocument = 'kept'")
    status, body = server.call("POST", "/telemetry", {
        "type": "telemetry", "queue_id": queue_id, "job_id": first_job, "status": "loading",
        "records_written": 1234, "last_loaded_timestamp": "2024-06-16T00:00:00Z"})
    assert status == 200 and body["data"]["outcome"] == "applied"
    _wait(browser, lambda d: bar.get_attribute("aria-valuenow") == "50", "the job's progress did not move")
    assert browser.execute_script("return window.__sameDocument") == "kept", "the page reloaded"
    assert card.find_element(By.CSS_SELECTOR, ".badge").text == "running"
    assert "1,234 records" in card.find_element(By.CSS_SELECTOR, ".job-meta").text
    announced = lambda d: d.find_element(By.ID, "announcer").get_attribute("textContent")  # noqa: E731
    _wait(browser, lambda d: "Job 1 loader-producer: running" in announced(d),
          "the change was not announced in the aria-live region")
    assert browser.find_element(By.ID, "q-progress").get_attribute("aria-valuenow") == "8"  # (0.5 + 5*0) / 6
    browser.save_screenshot(str(OUT / "ui-dashboard.png"))

    # Keyboard: arrow keys move through the list, Enter opens a queue.
    other = server.call("POST", "/queues/start", json.loads((ROOT / "shared/examples/realtime.json").read_text()))
    other_id = other[1]["data"]["queue_id"]
    newest = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'button[data-queue-id="{other_id}"]'),
                   "the list did not refresh by itself")[0]
    newest.send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-queue-id") == queue_id
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "no visible focus indicator"
    focused.send_keys(Keys.ARROW_UP)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stages .job")) == 7, "Enter did not open it")

    # Stop from the page: the queue ends, the stream closes, Stop is disabled.
    browser.find_element(By.ID, "stop").click()
    _wait(browser, lambda d: d.find_element(By.ID, "q-status").text == "stopped", "stop did not show")
    _wait(browser, lambda d: d.find_element(By.ID, "live-state").text == "Ended (stopped)", "stream not closed")
    assert browser.find_element(By.ID, "stop").get_property("disabled")
    assert browser.find_element(By.ID, "action-result").text == "Queue stopped"
    assert server.call("GET", f"/queues/{other_id}")[1]["data"]["status"] == "stopped"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_with_tokens_the_dashboard_asks_for_one_and_uses_it(browser, tmp_path):
    """Tokens on: without one the list says why; with the operate token the queue is listed,
    followed (polled: EventSource sends no header) and stopped."""
    from selenium.webdriver.common.by import By

    env = base_env(tmp_path / "state", QM_READ_TOKENS="ui-read", QM_OPERATE_TOKENS="ui-operate")
    with FunctionServer("all", env, tmp_path) as server:
        seed = json.loads((ROOT / "shared" / "examples" / "historical.json").read_text())
        code, body = server.call("POST", "/queues/start", seed, headers={"Authorization": "Bearer ui-operate"})
        assert code == 200, body
        queue_id = body["data"]["queue_id"]
        browser.get(server.url + "/ui")
        _wait(browser, lambda d: "bearer token" in d.find_element(By.ID, "list-state").text,
              "the list did not say a token is needed")
        browser.find_element(By.ID, "token").send_keys("ui-operate")
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        row = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'button[data-queue-id="{queue_id}"]'),
                    "the queue is not listed with the token")[0]
        row.click()
        _wait(browser, lambda d: d.find_element(By.ID, "live-state").text == "Live (polling)", "no polling")
        browser.find_element(By.ID, "stop").click()
        _wait(browser, lambda d: d.find_element(By.ID, "q-status").text == "stopped", "stop did not show")
        headers = {"Authorization": "Bearer ui-read"}
        assert server.call("GET", f"/queues/{queue_id}", headers=headers)[1]["data"]["status"] == "stopped"
        assert "ui-operate" not in (tmp_path / f"all-{server.port}.log").read_text()


def test_older_queues_page_in_by_cursor(browser, tmp_path):
    """Past the first 100, "Older queues" follows the server's cursor; queues started meanwhile
    go on top, and none is shown twice."""
    from selenium.webdriver.common.by import By

    with FunctionServer("all", base_env(tmp_path / "state"), tmp_path) as server:
        legacy = json.loads((ROOT / "shared" / "examples" / "legacy.json").read_text())
        for n in range(103):
            code, body = server.call("POST", "/queues/start", {**legacy, "symbol": f"S{n:03d}USDT"})
            assert code == 200, body
        browser.get(server.url + "/ui")
        _wait(browser, lambda d: d.find_element(By.ID, "list-state").text.startswith("100 of 103"), "not 100 of 103")
        more = browser.find_element(By.ID, "more")
        assert more.is_displayed()
        assert server.call("POST", "/queues/start", {**legacy, "symbol": "NEWUSDT"})[0] == 200
        more.click()
        _wait(browser, lambda d: d.find_element(By.ID, "list-state").text.startswith("104 queue(s)"), "not 104")
        ids = [b.get_attribute("data-queue-id") for b in browser.find_elements(By.CSS_SELECTOR, "button.queue-item")]
        assert len(ids) == len(set(ids)) == 104
        assert "NEWUSDT" in browser.find_elements(By.CSS_SELECTOR, "button.queue-item")[0].text
        assert not browser.find_element(By.ID, "more").is_displayed()
