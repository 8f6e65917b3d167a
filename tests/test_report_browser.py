"""The report in a real browser: Debian's headless Chromium, driven by chromedriver (selenium),
opens the page from disk. Every image decodes, the console stays free of errors (a CSP
violation or a script error would show there), no script from the runs executes, the
sorting script runs under the page's CSP, and a screenshot is written for people to look at
(path printed; also copied to $SWIFTOPS_SCREENSHOT_DIR when set).

Needs `chromium` and `chromium-driver` (Debian packages) and selenium (the dev extra)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from report_fixtures import SHAPES, FakeRun, make_sweep

from swiftops.report.render import write_report

pytestmark = pytest.mark.browser

XSS = "<script>alert(1)</script>"
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WIDTH, MAX_HEIGHT = 1400, 9000


def find_chromium() -> str | None:
    """Debian's real binary first (/usr/bin/chromium is a shell wrapper around it)."""
    for name in CHROMIUM_CANDIDATES:
        found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_chromium(), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        missing = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        # CI installs them (.ci/run sets SWIFTOPS_REQUIRE_BROWSER): there, their absence is a failure
        if os.environ.get("SWIFTOPS_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    profile = tempfile.mkdtemp(prefix="swiftops-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # explicit paths: selenium-manager never looks for (or downloads) a driver
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def report(tmp_path) -> Path:
    """The nine run shapes on a 3 x 3 grid (lr x lora_rank: a heatmap), every run's system
    prompt an attack, inference results on the first job."""
    grid = [(lr, rank) for lr in (1e-4, 1e-3, 1e-2) for rank in (4, 8, 16)]
    runs = [
        FakeRun(shape, {"lr": lr, "lora_rank": rank, "system": XSS}, steps=300, eval_every=15, seed=i)
        for i, (shape, (lr, rank)) in enumerate(zip(SHAPES, grid, strict=True))
    ]
    runs[0].stages = {
        "infer": {
            "status": "completed",
            "score": 62.5,
            "scorer": "exam",
            "n": 8,
            "result_path": "/x/r.jsonl",
        },
        "export": {"status": "skipped", "reason": "the training run is failed"},
    }
    sweep = make_sweep(
        tmp_path / "multirun" / "2026-11-24" / "10-00-00",
        runs,
        overrides=["lr=1e-4,1e-3,1e-2", "lora_rank=4,8,16", f"data.system={XSS}"],
    )
    return write_report(sweep, report_dir=tmp_path / "reports")


def test_report_in_chromium(browser, report, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.id || i.alt, i.complete, i.naturalWidth])"
    )
    assert len(images) == report.read_text(encoding="utf-8").count("<img ")
    assert len(images) >= 2 + 8  # overlay, heatmap, one per run with curves
    assert all(complete and width > 0 for _, complete, width in images), images

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
    shown = browser.find_element(By.CSS_SELECTOR, "#sweep-command").text
    assert XSS in shown  # the attack is text on the page

    shot = screenshot(browser, tmp_path / "report.png")
    print(f"\nscreenshot: {shot}")
    if os.environ.get("SWIFTOPS_SCREENSHOT_DIR"):
        target = Path(os.environ["SWIFTOPS_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        print(f"screenshot copied to {shutil.copy(shot, target / 'report.png')}")

    # the inline sorting script ran under the CSP: sort by best eval loss, blanks last
    header = browser.find_element(By.CSS_SELECTOR, "#comparison-table th[data-col='best_eval_loss']")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    cells = browser.execute_script(
        "const col = [...document.querySelectorAll('#comparison-table thead th')]"
        ".findIndex(th => th.dataset.col === 'best_eval_loss');"
        "return [...document.querySelectorAll('#comparison-table tbody tr')]"
        ".map(tr => tr.cells[col].dataset.sort);"
    )
    numbers = [float(c) for c in cells if c]
    assert numbers == sorted(numbers) and cells[len(numbers) :] == [""] * (len(cells) - len(numbers))
    header.click()
    assert header.get_attribute("aria-sort") == "descending"

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []


def screenshot(browser, path: Path) -> Path:
    """The whole page (up to MAX_HEIGHT pixels) as one PNG."""
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(int(height) + 100, MAX_HEIGHT))
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_the_tutorial_replica_s_table_fits_1400_px(browser, tmp_path):
    """Five runs that differ in lr, epochs, eval_steps and two long dataset paths (the replica's
    shape): every column, `next` included, is on screen without scrolling the table."""
    from selenium.webdriver.common.by import By

    data = "/root/.cache/swiftops/tiny-v1-tf5/data/tutorial_zh_{}_{}.jsonl"
    specs = [("diverged", 0.1, 3, 100), ("underfit", 5e-5, 3, 100), ("overfit", 5e-5, 50, 100)]
    specs += [("underfit", 5e-5, 5, 1000), ("converged", 5e-5, 10, 1000)]
    runs = [
        FakeRun(
            shape,
            {
                "lr": lr,
                "epochs": epochs,
                "eval_steps": 20 if n == 100 else 50,
                "dataset": [data.format(n, "train")],
                "args.val_dataset": [data.format(n, "val")],
            },
            steps=300,
            eval_every=15,
            seed=i,
        )
        for i, (shape, lr, epochs, n) in enumerate(specs)
    ]
    sweep = make_sweep(
        tmp_path / "multirun" / "2026-12-07" / "10-00-00", runs, overrides=["+sweep=tutorial_tiny"]
    )
    browser.get(write_report(sweep, report_dir=tmp_path / "reports").as_uri())
    fit = browser.execute_script(
        "const table = document.querySelector('#comparison-table'), wrap = table.closest('.table-wrap');"
        "const next = table.querySelector(\"th[data-col='next_override']\");"
        "return [wrap.scrollWidth, wrap.clientWidth, next.getBoundingClientRect().right, window.innerWidth];"
    )
    scroll_width, client_width, next_right, window_width = fit
    assert scroll_width <= client_width and next_right <= window_width, fit
    # the part of a path that tells the runs apart is what the cell shows
    cell = browser.find_element(
        By.CSS_SELECTOR, "#comparison-table td.param[title*='tutorial_zh_1000_train']"
    )
    assert cell.text.replace("\n", "") == "tutorial_zh_1000_train.jsonl"
