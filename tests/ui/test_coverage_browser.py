"""The dashboard's coverage strip and a queue's skipped periods, in headless Chromium against `all`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.backends import BACKENDS, fresh_all
from tests.servers import ROOT
from tests.ui.browser import chromium, require_chromium

pytestmark = pytest.mark.browser
OUT = ROOT / "test-output"
TYPE = "api_candles_5m"
GAP = {"from": "2024-03-10T00:00:00Z", "to": "2024-03-11T12:00:00Z"}


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path):
    """(a fresh `all`, its state backend)."""
    with fresh_all(request.param, tmp_path) as srv:
        yield srv, request.param


@pytest.fixture
def browser():
    require_chromium()
    OUT.mkdir(exist_ok=True)
    with chromium() as driver:
        yield driver


def _wait(driver, condition, message: str, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d), message)
    except Exception:
        driver.save_screenshot(str(OUT / "coverage-failure.png"))
        raise AssertionError(f"{message}; browser log: {driver.get_log('browser')}") from None


def _start(server, time_range: str) -> dict[str, Any]:
    code, reply = server.call("POST", "/queues/start", {
        "symbol": "BTCUSDT", "time_range": time_range, "partition": "month", "on_failure": "continue",
        "requests": [{"target": "loader-producer", "type": TYPE, "interval": "5m"},
                     {"target": "arango-connector", "type": TYPE}]})
    assert code == 200, reply
    return reply["data"]


def test_the_strip_colours_each_month_and_a_queue_lists_what_it_skipped(browser, served):
    from selenium.webdriver.common.by import By

    server, backend = served

    first = _start(server, "2024-01-01:2024-06-30")
    for job in first["jobs"]:
        if job["period"] in ("2024_01", "2024_02", "2024_03"):
            code, _ = server.call("POST", "/telemetry", {
                "type": "telemetry", "queue_id": first["queue_id"], "job_id": job["id"], "status": "finished",
                "records_written": 500, **({"gaps": [GAP]} if job["period"] == "2024_03" else {})})
            assert code == 200
    second = _start(server, "2024-01-01:2024-08-31")  # Jan-Jun covered by the first queue
    # On ArangoDB the months loaded by no real connector have no collection: only Apr-Jun are skipped.
    months = range(1, 7) if backend == "sqlite" else range(4, 7)
    assert [s["period"] for s in second["skipped"]] == [f"2024_0{m}" for m in months]

    browser.get(server.url + "/ui")
    browser.execute_script("""
        document.getElementById('cov-from').value = '2023-11-01';
        document.getElementById('cov-to').value = '2024-12-31';""")
    browser.find_element(By.CSS_SELECTOR, "#cov-form button[type=submit]").click()
    cells = _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cov-strip .cov-cell")) == 14
                  and d.find_elements(By.CSS_SELECTOR, "#cov-strip .cov-cell"), "the strip has no 14 cells")
    shown = {c.get_attribute("data-period"): c.get_attribute("class") for c in cells}
    expected = {"2023_11": "missing", "2023_12": "missing", "2024_01": "loaded", "2024_02": "loaded",
                "2024_03": "gaps", "2024_04": "in_flight", "2024_05": "in_flight", "2024_06": "in_flight",
                "2024_07": "in_flight", "2024_08": "in_flight", "2024_09": "missing", "2024_10": "missing",
                "2024_11": "missing", "2024_12": "missing"}
    assert shown == {p: f"cov-cell cov-{s}" for p, s in expected.items()}
    rows = browser.find_elements(By.CSS_SELECTOR, "#cov-strip .cov-row .cov-key")
    assert [r.text for r in rows] == ["2023", "2024"]
    march = browser.find_element(By.CSS_SELECTOR, '[data-period="2024_03"]').get_attribute("title")
    lines = march.splitlines()  # the 4th line names the dataset: the collection, or on ArangoDB the topic
    assert len(lines) == 5 and lines[:3] == ["2024_03 (2024-03-01 – 2024-03-31): loaded with gaps",
                                             f"queue {first['queue_id']}", "500 records"]
    assert lines[4] == f"gap {GAP['from']} – {GAP['to']}"
    summary = browser.find_element(By.ID, "cov-summary").text
    assert summary == ("BTCUSDT api_candles_5m, 2023-11-01 – 2024-12-31: 3 loaded, 5 in flight, 6 missing, "
                       "1 with gaps")
    browser.save_screenshot(str(OUT / "ui-coverage.png"))

    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'button[data-queue-id="{second["queue_id"]}"]'),
          "the second queue is not listed")[0].click()
    items = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#skipped-list .skipped-item"),
                  "the skipped periods are not shown")
    assert browser.find_element(By.ID, "skipped").is_displayed()
    assert [i.text.split(" (")[0] for i in items] == [f"{TYPE} 2024_0{m}" for m in months]
    assert all(first["queue_id"] in i.text for i in items)
    if backend == "sqlite":
        assert "(loaded)" in items[0].text and "500 records" in items[0].text
    assert "(in_flight)" in items[-1].text and "records" not in items[-1].text
    browser.find_element(By.CSS_SELECTOR, f'button[data-queue-id="{first["queue_id"]}"]').click()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stages .job")) == 12,
          "the first queue did not open")
    _wait(browser, lambda d: not d.find_element(By.ID, "skipped").is_displayed(), "a queue with no skips lists some")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
