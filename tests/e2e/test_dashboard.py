"""`arl-run dashboard` end to end, in a real headless Chromium (Playwright, Debian's
chromium): the page loads before the store exists and shows the runs once they come, a
live run's steps grow on screen, a failed run shows its error (as text, markup and all),
a stopped run turns INTERRUPTED, all without reloading the page, and an error the server
answers with is shown in its own words. (The server's answers themselves are tested in
tests/unit/test_dashboard_app.py.)

The test also takes the screenshots in docs/images: with ARL_DASHBOARD_SCREENSHOTS=DIR it
writes them there (see docs/dashboard.md), else into its own temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arl.testing import poll_for
from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_VARIABLE = "ARL_DASHBOARD_SCREENSHOTS"
VIEWPORT = {"width": 1280, "height": 800}
HUGE_ID = 10**20
INJECTED = '<img id="injected" src="x" onerror="document.title = \'injected\'">'


@contextlib.contextmanager
def _dashboard(arl_run: Any) -> Iterator[str]:
    """``arl-run dashboard`` on a free port, reading the test's store; yields its URL. On
    leaving, it is stopped with SIGTERM and must end cleanly (exit code 0, no traceback)."""
    proc = subprocess.Popen(
        arl_run.argv("dashboard", "--port", "0", "--store", arl_run.url),
        env=arl_run.env,
        cwd=arl_run.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "arl-run dashboard printed no URL within 30 s"
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("arl-run dashboard: http://127.0.0.1:"), line
        yield line.split()[2]
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
        assert f"no store at {arl_run.db} yet" in err  # it started before the store existed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=15)


@contextlib.contextmanager
def _page() -> Iterator[tuple[Any, list[str]]]:
    """A page in headless Chromium, and the errors its scripts raise or log."""
    if not CHROMIUM.exists():
        pytest.skip(f"the dashboard's test needs Debian's chromium at {CHROMIUM}: apt install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            yield page, problems
        finally:
            browser.close()


def _cell(page: Any, uid: str, column: str) -> str | None:
    """The text of ``column`` in the runs table's row of run ``uid``; None while it has none."""
    return page.evaluate(
        """([uid, column]) => {
            for (const row of document.querySelectorAll("#runs-body tr")) {
                if (row.querySelector("td.uid").textContent !== uid) continue;
                return row.querySelector("td." + column).textContent;
            }
            return null;
        }""",
        [uid, column],
    )


def _number(text: str | None) -> int:
    digits = "".join(c for c in text or "" if c.isdigit())
    return int(digits) if digits else -1


def _screenshot(page: Any, folder: Path, name: str) -> None:
    path = folder / name
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.long(16)
def test_the_page_follows_a_live_run_and_shows_a_failed_runs_error(arl_run, no_leaks, tmp_path: Path) -> None:
    shots = Path(os.environ.get(SCREENSHOTS_VARIABLE) or tmp_path)
    with _dashboard(arl_run) as url, _page() as (page, problems):
        page.goto(url)
        page.wait_for_selector("#notice:has-text('No store at')")  # no store yet: the page says so

        crashing = write(
            arl_run.tmp, uid="broken", env="arl_test_components:CrashingEnvironment", env_params="{crash_at: 5}"
        )
        assert arl_run.run(crashing).returncode == 1
        with sqlite3.connect(arl_run.db) as db:  # text from the store that looks like markup
            db.execute("update experiment_runs set error = error || char(10) || ?", (INJECTED,))
        live = arl_run.start(
            write(
                arl_run.tmp, uid="live", env="arl_test_components:SlowEnvironment", episodes=100000,
                env_params="{episode_length: 20, delay: 0.002}", brain="arl_test_components:MetricBrain",
            )
        )  # fmt: skip

        # The runs come without a reload; the live run's steps grow on screen, with a rate.
        first = poll_for(lambda: max(0, _number(_cell(page, "live", "steps"))), timeout=30, what="the live run's steps")
        poll_for(lambda: _number(_cell(page, "live", "steps")) > first, timeout=15, what="its steps to grow")
        poll_for(lambda: _number(_cell(page, "live", "rate")) > 0, timeout=15, what="its steps per second")
        assert _cell(page, "live", "status-cell") == "RUNNING"
        assert _cell(page, "broken", "status-cell") == "FAILED"
        assert _cell(page, "broken", "error") == "env.env.0: RuntimeError: boom at step 5"
        _screenshot(page, shots, "dashboard-runs.png")

        # The failed run's page shows its error, the markup in it as text.
        page.click("#runs-body td.uid a:text-is('broken')")
        error = page.wait_for_selector("#run-error").text_content()
        assert "RuntimeError: boom at step 5" in error
        assert "Traceback" in error
        assert INJECTED in error
        assert page.query_selector("#injected") is None
        assert page.title() == "broken · arl dashboard"

        # The live run's page: its steps grow, a line per agent, the brain's metric.
        page.go_back()
        page.click("#runs-body td.uid a:text-is('live')")
        before = _number(page.wait_for_selector("#run-steps").text_content())
        poll_for(lambda: _number(page.text_content("#run-steps")) > before, timeout=15, what="steps on the run's page")
        poll_for(lambda: len(page.query_selector_all("#returns polyline")) == 2, timeout=15, what="a line per agent")
        poll_for(lambda: "objective" in page.text_content("#metrics-body"), timeout=15, what="the brain's metric")
        _screenshot(page, shots, "dashboard-run.png")

        os.killpg(live.pid, signal.SIGINT)
        live.communicate(timeout=30)
        assert live.returncode == 130
        poll_for(
            lambda: page.text_content("h1 .status") == "INTERRUPTED", timeout=15, what="the run to end on the page"
        )
        assert problems == []

        # An answer without the store's state (here an id no store can hold): the server's own words.
        page.evaluate(f"location.hash = '#/run/{HUGE_ID}'")
        said = f"the dashboard answered: no run with id {HUGE_ID}: a store's ids go up to {2**63 - 1}"
        poll_for(lambda: page.text_content("#live") == said, timeout=10, what="the server's words on the page")
