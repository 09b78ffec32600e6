"""The HTML report in a real browser: headless Chromium through Selenium and the system
chromedriver. Renders a synthetic ledger with energy (so every plot is drawn) and checks
what a reader would hit: failed loads, console errors, empty images, the answer tables
(visible without scrolling sideways at 1280 px), sorting. The 1280 px screenshot lands in
test-artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ledger_factory import toy_ledger, toy_specs
from report_ledgers import add_failed

from bench.report.writer import write_report

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "headless Chromium and chromedriver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield drv
    drv.quit()


def test_report_page_renders_cleanly(driver, tmp_path):
    run_dir = add_failed(toy_ledger(tmp_path / "reports" / "toy-run"), "toy", "maml")
    page = write_report(run_dir)
    driver.set_window_size(1280, 1000)
    driver.get(page.as_uri())

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    external = [r for r in resources if not r.startswith(("data:", "file:"))]
    assert external == [], f"the page must make no network requests: {external}"

    sizes = driver.execute_script("""
        const imgs = [...document.images].map(i => [i.naturalWidth, i.naturalHeight]);
        const svgs = [...document.querySelectorAll('figure > svg')].map(s => {
            const r = s.getBoundingClientRect(); return [r.width, r.height]; });
        return imgs.concat(svgs);""")
    assert len(sizes) >= 6, "expected every plot to be drawn"
    assert all(w > 0 and h > 0 for w, h in sizes), sizes

    rows = driver.execute_script(
        "return [...document.querySelectorAll('#answers tbody tr')]"
        ".map(r => r.cells[0].textContent + '/' + r.cells[1].textContent)"
    )
    assert set(rows) == {f"{s.suite}/{s.method}" for s in toy_specs()}
    assert "toy / maml / seed 0" in driver.find_element("id", "unfinished").text

    # the answer and provenance tables are visible at 1280 px without scrolling sideways
    overflow = driver.execute_script(
        "return [...document.querySelectorAll('#answers table, #provenance table')]"
        ".map(t => t.getBoundingClientRect().right - t.parentElement.getBoundingClientRect().right)"
    )
    assert overflow and max(overflow) <= 1, overflow

    # sorting works without a framework: click the score header twice -> descending
    table = "answers-classification"
    title = "score ± 95% CI over episodes"
    header = driver.find_element("xpath", f"//table[@id='{table}']//th[text()='{title}']")
    header.click()
    header.click()
    means = driver.execute_script(
        f"const col = [...document.querySelectorAll('#{table} thead th')]"
        f".findIndex(th => th.textContent === '{title}');"
        f"return [...document.querySelectorAll('#{table} tbody tr')]"
        ".map(r => parseFloat(r.cells[col].dataset.sort))"
    )
    assert len(means) == 3 and means == sorted(means, reverse=True)
    # every mark of the answer table is explained under it
    assert "≈: rests on estimated energy" in driver.find_element("id", "legend-classification").text

    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 100, 16000))
    shot = ARTIFACTS / "report-1280.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
