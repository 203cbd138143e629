"""What ``arl-run`` shows while runs go: plain lines in a pipe, a live table on a terminal
(a real pseudo-terminal), only the summary with ``-q``."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from arl_runner import ArlRun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
DUMMY = str(Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml")
SUMMARY = re.compile(r"run (\S+) \(run id \d+\): FINISHED")


def test_in_a_pipe_each_phase_is_said_in_plain_lines_and_quiet_says_only_the_summary(arl_run: ArlRun) -> None:
    # Without the steps stored (no return of an episode to read) and a last phase of
    # 12 episodes of 200 steps, long enough to be asked its status while it goes.
    slower = ("--set", "schedule.phase_0.environments.0.environment.params.episode_length=200")
    done = arl_run.run(DUMMY, "--no-store-steps", *slower, "--set", "schedule.phase_1.phase_config.episodes=12")
    assert done.returncode == 0, done.stderr
    assert "control request" not in done.stderr  # (every status was answered: none failed)
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    phases = [line for line in lines if line.startswith("[dummy-run] phase ")]
    assert [line.split(":")[0] for line in phases] == [
        "[dummy-run] phase 1/2 phase_0 (train)",
        "[dummy-run] phase 1/2 phase_0 ended (completed)",
        "[dummy-run] phase 2/2 phase_1 (test)",
        "[dummy-run] phase 2/2 phase_1 ended (completed)",
    ]
    assert phases[0] == lines[0] == "[dummy-run] phase 1/2 phase_0 (train): 1 episode planned"
    assert ": 1 episode, 200 steps; mean return attacker -" in phases[1]  # (the workers' own counts)
    assert ": 12 episodes, 2,400 steps; mean return attacker -" in phases[3]
    assert lines.index(phases[3]) + 1 == lines.index("run dummy-run (run id 1): FINISHED")

    quiet = arl_run.run(DUMMY, "-q", "-vv")
    assert quiet.returncode == 0, quiet.stderr
    said = quiet.stdout.splitlines()
    assert said[0] == "run dummy-run (run id 2): FINISHED"
    assert said[1].startswith("  phases 2, episodes 2, steps 20")
    assert said[2].startswith("results: ")
    assert len(said) == 3
    assert "control request status" not in quiet.stderr  # -q asks the governor nothing (-vv would say)


def _on_a_terminal(arl_run: ArlRun, *args: str, timeout: float = 60.0) -> tuple[int, str]:
    """arl-run with its stdout and stderr a pseudo-terminal (and the test's folder on its
    path); its exit code and all it wrote."""
    main, other = pty.openpty()
    env = {**arl_run.env, "TERM": "xterm", "COLUMNS": "160", "LINES": "40"}
    env["PYTHONPATH"] = f"{arl_run.tmp}{os.pathsep}{env['PYTHONPATH']}"
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


NOISY = """
import ctypes, os
from arl.dummy import DummyEnvironment

class NoisyEnvironment(DummyEnvironment):
    def __init__(self, **params):
        super().__init__(**params)
        print(f"noisy print from pid {os.getpid()}", flush=True)
        os.write(2, b"noisy stderr\\n")
        ctypes.CDLL(None).printf(b"noisy C printf\\n")  # (C's stdio: to a terminal, a line at a time)
"""


def test_on_a_terminal_a_sweep_runs_as_rows_of_a_live_table_with_log_lines_above_it(arl_run: ArlRun) -> None:
    # The runs' environments write to their stdout and stderr as they start: above the table.
    (arl_run.tmp / "noisy_env.py").write_text(NOISY)
    noisy = ("--set", "schedule.phase_0.environments.0.environment.name=noisy_env:NoisyEnvironment")
    code, said = _on_a_terminal(arl_run, DUMMY, "--sweep", "seed=1,2", "--parallel", "2", "-v", *noisy)
    assert code == 0, said
    live = said.index("\x1b[?25l")  # the table's start (the files' check made an environment before)
    for line in ("noisy print from pid", "noisy stderr", "noisy C printf"):
        assert said.count(line, live) == 4, said  # (once a phase of each run)
    for printed in re.finditer(r"noisy print from pid \d+", said[live:]):
        before = said[: live + printed.start()]
        # Printed where the table was (rich erased it, and draws it again below), never into
        # it; or right under another process's line printed there in the same batch.
        line_before = before.rstrip().rsplit("\n", 1)[-1].rsplit("\x1b[2K", 1)[-1]
        assert before.endswith("\x1b[2K") or line_before.startswith("noisy"), before[-300:]
    assert "\x1b[" in said  # drawn and redrawn in place
    uids = SUMMARY.findall(said)
    assert len(uids) == 2
    table = said[said.rindex("steps/s") : said.index(f"run {uids[0]} (run id")]  # its last drawing
    for uid in uids:
        assert re.search(re.escape(uid) + r"\s+FINISHED\s+2/2 phase_1\s+2\s+20\b", table), table
    assert "INFO    arl.executor: run " in said  # -v's lines, printed above the table
    assert "\x1b[?25h" in table  # the cursor shown again once it stopped


READER = """
import sys
from arl.dummy import DummyEnvironment

class ReadingEnvironment(DummyEnvironment):
    read = False

    def step(self, *args, **kwargs):  # (the files' check builds and resets it; only a run steps it)
        if not self.read:
            self.read = True
            print(f"the terminal said {sys.stdin.readline()!r}", flush=True)
        return super().step(*args, **kwargs)
"""


def test_a_component_that_reads_the_terminal_gets_nothing_and_does_not_hang_the_run(arl_run: ArlRun) -> None:
    """arl-run in a terminal that is its controlling one (a user's shell): the runs'
    processes are in a process group of their own, so a read of that terminal would stop
    them (SIGTTIN) and hang the run; they read /dev/null instead."""
    (arl_run.tmp / "reading_env.py").write_text(READER)
    argv = arl_run.argv(
        DUMMY, "--set", "schedule.phase_0.environments.0.environment.name=reading_env:ReadingEnvironment",
        "--checkpoint-dir", str(arl_run.tmp / "ckpt"),
    )  # fmt: skip
    env = {**arl_run.env, "TERM": "xterm", "COLUMNS": "160", "LINES": "40"}
    env["PYTHONPATH"] = f"{arl_run.tmp}{os.pathsep}{env['PYTHONPATH']}"
    pid, main = pty.fork()  # the child: a session of its own, the terminal its controlling one
    if pid == 0:
        try:
            os.chdir(arl_run.tmp)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    chunks, deadline, status = [], time.monotonic() + 30, None
    try:
        while status is None and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):  # EIO: every writer has closed the terminal
                    chunks.append(os.read(main, 65536))
            done, code = os.waitpid(pid, os.WNOHANG)
            status = code if done else None
    finally:
        if status is None:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(main)
    said = b"".join(chunks).decode("utf-8", "replace")
    assert status is not None, f"the run hung: {said[-2000:]}"
    assert os.waitstatus_to_exitcode(status) == 0, said
    assert "the terminal said ''" in said
