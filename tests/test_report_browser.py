"""The HTML report in a real headless browser (Debian's Chromium driven by Playwright): each
page loads without console errors, every chart draws, and a screenshot is taken.

`DSD_REPORT_SCREENSHOTS=DIR` keeps the screenshots there (to look at them); by default
they go to the test's temporary folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dsd.report import write_report

CHROMIUM = next((p for p in (os.environ.get("DSD_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(the dev extra installs it)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1400, "height": 900})
        yield context
        context.close()


def test_every_report_loads_and_draws_every_chart(browser, report_runs, tmp_path):
    shots = Path(os.environ.get("DSD_REPORT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for kind, (folder, charts) in report_runs.items():
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(write_report(folder).resolve().as_uri())
        page.wait_for_load_state("load")
        # A chart has drawn when plotly has put its SVG and at least one trace in it.
        drawn = ("Array.from(document.querySelectorAll('.chart')).filter(c => "
                 "c.querySelector('svg.main-svg') && c.querySelector('.trace')).length")
        page.wait_for_function(f"{drawn} === {charts}", timeout=30_000)
        assert page.evaluate("document.querySelectorAll('.chart').length") == charts, kind
        assert errors == [], (kind, errors)
        shot = shots / f"report-{kind}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        page.close()
