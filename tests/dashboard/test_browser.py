"""The dashboard in Chromium (Debian's ``chromium`` driven by Selenium through ``chromedriver``):
every page loads against a running optimizer, a trial that finishes shows up without a reload, the
stop button stops the study, and the browser logs no error. Screenshots are kept as test artifacts
(``$SAGA_TEST_ARTIFACTS/dashboard``, default ``.saga/test-artifacts/dashboard``)."""
from __future__ import annotations

import json
import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from saga.v1 import optimizer_pb2 as pb
from tests.dashboard.conftest import ARTIFACTS, TRIALS_PER_PHASE, wait_for
from tests.report.browser import chromium
from tests.report.conftest import report_spec


@pytest.fixture(scope="module")
def browser():
    driver_path = shutil.which("chromedriver")
    if not driver_path:
        raise AssertionError("chromedriver is not installed: `make test` installs it (apt-get install chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,2400", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def errors(driver) -> list[str]:
    """What the page logged as an error since the last call (console.error, exceptions, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def text(driver, css: str) -> str:
    """The text of the first match, "" when none; live updates replace elements, so a stale one is
    read again by the caller's next poll."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def charts_drawn(driver, ids: list[str]) -> bool:
    return all(driver.find_elements(By.CSS_SELECTOR, f"#{i} canvas") for i in ids)


def test_the_studies_page_lists_every_study(stack, browser):
    browser.get(stack.url)
    row = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"tr[data-study='{stack.finished}']"),
                   what="the finished study's row")[0]
    total = 3 * TRIALS_PER_PHASE
    assert "completed" in row.text and f"{total}/{total}" in row.text
    best = stack.client.best_trial(stack.finished)
    assert f"{best.value:.4f}" in row.text
    browser.save_screenshot(str(ARTIFACTS / "studies.png"))
    assert errors(browser) == []


def test_a_finished_study_shows_its_analysis_trials_and_evaluation(stack, browser):
    browser.get(f"{stack.url}#/study/{stack.finished}")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#trials-table tbody tr")) == 3 * TRIALS_PER_PHASE,
             what="a row per trial")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#evaluation-body table"), timeout=180,
             what="the best trial's evaluation (needs the GP refit)")
    wait_for(lambda: charts_drawn(browser, ["best-chart", "curves-chart", "parallel-chart", "importance-chart",
                                            "surrogate-chart", "confusion-test"]), what="every chart")
    assert "random-forest" in text(browser, "#importance-note")
    page = text(browser, "main")
    assert "null" not in page and "undefined" not in page
    assert "polyps" in text(browser, "#evaluation-body") and "Kvasir" in text(browser, "#evaluation-body")
    # the layer phase (shown first: the last one that started) searches one parameter: a surrogate
    assert text(browser, "#surrogate-note").startswith("mean ± std")
    # sort by value, best first: the top row is the best trial
    for _ in range(2):
        click_fresh(browser, "#trials-table th[data-key='value']")
    best = stack.client.best_trial(stack.finished)
    first = browser.find_element(By.CSS_SELECTOR, "#trials-table tbody tr")
    assert first.get_attribute("data-trial") == best.id
    # filter: the infeasible trial (trial 2, "loss became NaN") and its reason
    browser.find_element(By.ID, "trial-filter").send_keys("NaN")
    rows = browser.find_elements(By.CSS_SELECTOR, "#trials-table tbody tr")
    assert len(rows) == 1 and "infeasible" in rows[0].text and "loss became NaN" in rows[0].text
    browser.save_screenshot(str(ARTIFACTS / "finished-study.png"))
    assert errors(browser) == []


def test_a_running_study_updates_live_and_stops_from_the_page(stack, browser):
    study = stack.client.create_study(report_spec(name="running study"))
    trial, lease = stack.client.lease_trial("test-worker", study_id=study.id, wait=30)
    stack.client.report_progress(trial.id, lease.id, "head", 0, {"val_accuracy": 0.6})
    browser.get(f"{stack.url}#/study/{study.id}")
    row = f"#trials-table tr[data-trial='{trial.id}']"
    wait_for(lambda: "running" in text(browser, row), what="the running trial")
    wait_for(lambda: text(browser, "#live").startswith("live"), what="the live stream")
    browser.execute_script("window.__sameLoad = true")
    for epoch, acc in ((1, 0.7), (2, 0.75)):
        stack.client.report_progress(trial.id, lease.id, "head", epoch, {"val_accuracy": acc})
    stack.client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": 0.75})
    wait_for(lambda: "succeeded" in text(browser, row), what="the finished trial, without a reload")
    assert "0.7500" in text(browser, row)
    assert browser.execute_script("return window.__sameLoad") is True  # the page was never reloaded
    wait_for(lambda: "0.7500" in text(browser, "#head"), what="the best value in the header")
    browser.save_screenshot(str(ARTIFACTS / "running-study.png"))

    browser.find_element(By.ID, "stop-study").click()
    wait_for(lambda: "stopped" in text(browser, "#head .state"), what="the stopped state on the page")
    assert stack.client.get_study(study.id).state == pb.STUDY_STOPPED
    assert stack.client.get_study(study.id).message == "stopped from the dashboard"
    wait_for(lambda: browser.execute_script("return document.getElementById('stop-study').disabled"),
             what="the stop button to be disabled")
    browser.save_screenshot(str(ARTIFACTS / "stopped-study.png"))
    assert errors(browser) == []
    print(json.dumps({"screenshots": sorted(str(p) for p in ARTIFACTS.glob("*.png"))}))


def click_fresh(browser, selector: str) -> None:
    """Clicks ``selector``, finding it again if the page redrew it between the find and the click."""
    for _ in range(20):
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept being redrawn")
