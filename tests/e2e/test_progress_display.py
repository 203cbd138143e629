"""What ``arl-run`` shows while runs go: plain lines in a pipe, a live table on a terminal
(a real pseudo-terminal), only the summary with ``-q``."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from arl_runner import ArlRun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
DUMMY = str(Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml")
SUMMARY = re.compile(r"run (\S+) \(run id \d+\): FINISHED")


def test_in_a_pipe_each_phase_is_said_in_plain_lines_and_quiet_says_only_the_summary(arl_run: ArlRun) -> None:
    done = arl_run.run(DUMMY)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [
        "[dummy-run] phase 1/2 phase_0 (train)",
        "[dummy-run] phase 1/2 phase_0 ended (completed)",
        "[dummy-run] phase 2/2 phase_1 (test)",
        "[dummy-run] phase 2/2 phase_1 ended (completed)",
    ]
    assert lines[0] == "[dummy-run] phase 1/2 phase_0 (train): 1 episode planned"
    assert ": 1 episode, 10 steps; mean return attacker -" in lines[1]
    assert lines[4] == "run dummy-run (run id 1): FINISHED"

    quiet = arl_run.run(DUMMY, "-q", "-vv")
    assert quiet.returncode == 0, quiet.stderr
    said = quiet.stdout.splitlines()
    assert said[0] == "run dummy-run (run id 2): FINISHED"
    assert said[1].startswith("  phases 2, episodes 2, steps 20")
    assert said[2].startswith("results: ")
    assert len(said) == 3
    assert "control request status" not in quiet.stderr  # -q asks the governor nothing (-vv would say)


def _on_a_terminal(arl_run: ArlRun, *args: str, timeout: float = 60.0) -> tuple[int, str]:
    """arl-run with its stdout and stderr a pseudo-terminal; its exit code and all it wrote."""
    main, other = pty.openpty()
    env = {**arl_run.env, "TERM": "xterm", "COLUMNS": "160", "LINES": "40"}
    argv = arl_run.argv(*args, "--checkpoint-dir", str(arl_run.tmp / "ckpt"))
    proc = subprocess.Popen(argv, env=env, cwd=arl_run.tmp, stdin=subprocess.DEVNULL, stdout=other, stderr=other)
    arl_run.started.append(proc)  # (reaped by the fixture if the test fails)
    os.close(other)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        with contextlib.suppress(OSError):
            os.close(main)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_a_sweep_runs_as_rows_of_a_live_table_with_log_lines_above_it(arl_run: ArlRun) -> None:
    code, said = _on_a_terminal(arl_run, DUMMY, "--sweep", "seed=1,2", "--parallel", "2", "-v")
    assert code == 0, said
    assert "\x1b[" in said  # drawn and redrawn in place
    uids = SUMMARY.findall(said)
    assert len(uids) == 2
    table = said[said.rindex("steps/s") : said.index(f"run {uids[0]} (run id")]  # its last drawing
    for uid in uids:
        assert re.search(re.escape(uid) + r"\s+FINISHED\s+2/2 phase_1\s+2\s+20\b", table), table
    assert "INFO    arl.executor: run " in said  # -v's lines, printed above the table
    assert "\x1b[?25h" in table  # the cursor shown again once it stopped
