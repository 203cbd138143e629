"""What ``arl-run run`` shows while runs go (arl.progress), worked out from statuses as the
governors give them, without any process: the plan of a file, the live table's rows, the
plain lines off a terminal, the pace of steps, the tally of a phase's ended episodes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pty
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from arl import childoutput, liveprogress, progress
from arl.conditions import PhaseSummary
from arl.config.loader import load_experiment_text
from arl.governor.control import ControlDesk, Pace, PhaseTally, count_on
from arl.livecontrol import LiveControl
from arl.messages.executor import ControlRequest
from arl.progress import PhasePlan, PlainLines, Progress, RunProgress
from arl.testing import poll_for
from experiment_files import DUMMY_AGENT as AGENT

PLANNED = "100 episodes planned, 50 on each of 2 workers, at most 100 steps each"
RETURNED = "mean return red 1.5, blue -1.5"
TWO_PHASES = (PhasePlan("train", "train", 50, 2, 100), PhasePlan("test", "test", 5, 1))


def status(phase: int | None, done: int, **more: Any) -> dict[str, Any]:
    """A status as :meth:`arl.governor.control.ControlDesk.status` gives it."""
    return {"state": "RUNNING", "phase_index": phase, "phase_count": 2, "phase_episodes": done, **more}


def ended_phase(name: str, episodes: int, steps: int, **returns: float) -> dict[str, Any]:
    return {"name": name, "mode": "train", "reason": "completed", "episodes": episodes, "steps": steps,
            "returns": returns}  # fmt: skip


def test_the_plan_counts_every_copy_of_envs_per_worker_and_caps_steps_where_the_file_does() -> None:
    agents = "".join(AGENT.format(name=name) for name in ("red", "blue"))
    text = f"""uid: planned
schedule:
  - learn:
      environments:
        - environment: {{name: arl.dummy:DummyEnvironment, uid: env}}
      agents:{agents}
      simulation: {{name: vanilla}}
      phase_config: {{episodes: 4, workers: 3, envs_per_worker: 2, max_steps: 25}}
  - check:
      phase_config: {{mode: test, episodes: 1, workers: 1, envs_per_worker: 1, max_steps: null}}
"""
    learn, check = progress.plans(load_experiment_text(text, "planned.yml"))
    assert (learn.name, learn.episodes, learn.workers, learn.total, learn.steps) == ("learn", 4, 6, 24, 600)
    assert (check.mode, check.total, check.steps) == ("test", 1, None)


def test_a_row_shows_the_phase_its_counts_of_those_planned_the_pace_returns_and_time_left() -> None:
    shown = Progress([("sweep[lr=0.1]", TWO_PHASES)])
    shown.state(0, "STARTING", now=100.0)
    shown.update(0, status(0, 10, phase_steps=900, steps_per_s=812.4, returns={"red": 1.23456, "blue": -2.0}), 102.0)
    shown.update(0, status(0, 30, phase_steps=2800, steps_per_s=950.0, returns={"red": 2.5}), 104.0)
    row = shown.rows(now=104.0)[0]
    assert row.run == "sweep[lr=0.1]"
    assert (row.state, row.phase, row.episodes, row.steps, row.steps_per_s) == (
        "RUNNING", "1/2 train", "30/100", "2,800/10,000", "950"
    )  # fmt: skip
    assert row.returns == "red 2.5"
    assert row.elapsed == "0:00:04"
    # 20 episodes in 2 s: 70 more here (7 s), then test's 5 a worker at 2 workers / 10 a second (1 s).
    assert row.left == "0:00:08"
    assert shown.rows(now=107.0)[0].left == "0:00:05"  # it counts down between statuses


def test_a_row_leaves_blank_what_is_not_known_and_an_ended_run_keeps_its_outcome() -> None:
    shown = Progress([("a", TWO_PHASES), ("b", TWO_PHASES)])
    assert shown.rows(0.0)[1] == progress.Row("b", "waiting", "", "", "", "", "", "", "")
    shown.update(0, status(0, 0, phase_steps=0, steps_per_s=None), 1.0)
    first = shown.rows(1.0)[0]
    assert (first.episodes, first.steps_per_s, first.returns, first.left) == ("0/100", "", "", "")
    outcome = SimpleNamespace(status="FAILED", episodes=3, steps=120)
    shown.ended(0, outcome, 5.0)
    shown.update(0, status(0, 9), 6.0)  # (a late answer changes nothing once the run ended)
    done = shown.rows(9.0)[0]
    assert (done.state, done.episodes, done.steps, done.left, done.elapsed) == ("FAILED", "3", "120", "", "0:00:04")


def test_off_a_terminal_a_phase_gives_a_start_line_a_line_a_tenth_and_an_end_line() -> None:
    run = RunProgress("dummy", TWO_PHASES)
    lines = PlainLines()
    said: list[str] = []
    for second, done in enumerate([0, 4, 9, 10, 11, 12, 25, 99]):
        run.status, run.seen = status(0, done, phase_steps=done * 10, steps_per_s=500.0), float(second)
        said += lines.after_update(run, float(second))
    run.status = status(1, 0, history=[ended_phase("train", 100, 1000, red=1.5, blue=-1.5)])
    said += lines.after_update(run, 9.0)
    assert said[0] == f"[dummy] phase 1/2 train (train): {PLANNED}"
    # 10% is the first tenth; 11% and 12% are in it still; then 25% and 99% each pass one
    assert [line.split(":")[0] for line in said[1:4]] == ["[dummy] train 10%", "[dummy] train 25%", "[dummy] train 99%"]
    assert said[1].startswith("[dummy] train 10%: 10/100 episodes, 100/10,000 steps, 500 steps/s;")
    assert said[4] == "[dummy] phase 1/2 train ended (completed): 100 episodes, 1,000 steps; " + RETURNED
    assert said[5] == "[dummy] phase 2/2 test (test): 5 episodes planned"
    assert len(said) == 6
    assert not any("\x1b" in line for line in said)


def test_a_phase_that_began_and_ended_between_two_statuses_is_still_said() -> None:
    run = RunProgress("quick", TWO_PHASES)
    run.status = {"state": "STOPPING", "phase_index": 1, "phase_count": 2,
                  "history": [ended_phase("train", 100, 1000), ended_phase("test", 5, 50, red=0.5)]}  # fmt: skip
    said = PlainLines().after_update(run, 1.0)
    assert [line.split(":")[0] for line in said] == [
        "[quick] phase 1/2 train (train)", "[quick] phase 1/2 train ended (completed)",
        "[quick] phase 2/2 test (test)", "[quick] phase 2/2 test ended (completed)",
    ]  # fmt: skip
    assert said[1].endswith("100 episodes, 1,000 steps")  # (no return: none stored, none said)
    assert said[3].endswith("5 episodes, 50 steps; mean return red 0.5")


def test_a_long_phase_says_it_still_goes_at_least_every_quiet_limit() -> None:
    run = RunProgress("slow", TWO_PHASES)
    lines = PlainLines()
    run.status = status(0, 0)
    assert len(lines.after_update(run, 0.0)) == 1  # its start
    assert lines.after_update(run, progress.QUIET_LIMIT - 1) == []
    [line] = lines.after_update(run, progress.QUIET_LIMIT)
    assert line.startswith("[slow] train 0%: 0/100 episodes")


def test_users_text_is_escaped_and_never_read_as_markup() -> None:
    shown = Progress([("evil\x1b[31m[bold]x", (PhasePlan("p\x1b]0;", "train", 1, 1),))])
    shown.update(0, {"state": "RUNNING", "phase_index": 0, "returns": {"[red]": 1.0}}, 1.0)
    console = Console(file=io.StringIO(), width=200, force_terminal=False, color_system=None)
    console.print(liveprogress.render(shown.rows(1.0)))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "evil\\x1b[31m[bold]x" in text
    assert "p\\x1b]0;" in text
    assert "[red] 1" in text
    assert "\x1b" not in text


def test_the_mode_is_live_on_a_terminal_plain_elsewhere_and_none_when_quiet() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.mode_for(False, Terminal(), {"TERM": "xterm"}) == "live"
    assert progress.mode_for(False, Terminal(), {"TERM": "dumb"}) == "plain"
    assert progress.mode_for(False, io.StringIO(), {"TERM": "xterm"}) == "plain"
    assert progress.mode_for(True, Terminal(), {"TERM": "xterm"}) == "none"


class Terminal:
    """A real pseudo-terminal: ``out``, its writing end as a text stream; :meth:`said`,
    what reached the other end."""

    def __init__(self) -> None:
        self._main, other = pty.openpty()
        os.set_blocking(self._main, False)
        self.out = os.fdopen(other, "w", encoding="utf-8")

    def said(self) -> str:
        chunks = []
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._main, 65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def close(self) -> None:
        self.out.close()
        os.close(self._main)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    made = Terminal()
    yield made
    made.close()


def test_log_lines_go_through_the_live_table_while_it_is_on_and_back_after(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", terminal.out)
    handler = logging.StreamHandler(terminal.out)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    with progress.shown("live", [("r", TWO_PHASES)], terminal.out, lambda: 0.0) as shown:
        assert isinstance(shown, liveprogress.LiveProgress)
        assert handler.stream is sys.stderr  # rich's proxy: lines print above the table
        assert sys.stderr is not terminal.out
        logging.getLogger("arl.test").warning("a line above the table")
    assert handler.stream is terminal.out
    assert sys.stderr is terminal.out
    said = terminal.said()
    assert said.index("a line above the table") < said.rindex("steps/s")  # (the table drawn again below it)


def test_the_live_table_is_stopped_and_the_cursor_shown_when_the_runs_end_by_an_exception(terminal: Terminal) -> None:
    started: list[Any] = []

    def interrupted() -> None:
        with progress.shown("live", [("r", TWO_PHASES)], terminal.out, lambda: 0.0) as shown:
            started.append(shown)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert isinstance(started[0], liveprogress.LiveProgress)
    assert not started[0]._live.is_started
    said = terminal.said()
    assert "\x1b[?25l" in said  # the cursor hidden while the table is live,
    assert said.endswith("\x1b[?25h")  # and shown again at its end


def test_plain_lines_are_written_and_flushed_as_they_come() -> None:
    out = io.StringIO()
    with progress.shown("plain", [("r", TWO_PHASES)], out, lambda: 0.0) as shown:
        assert shown is not None
        shown.update(0, status(0, 0), 0.0)
        assert out.getvalue() == f"[r] phase 1/2 train (train): {PLANNED}\n"
    with progress.shown("none", [("r", TWO_PHASES)], out, lambda: 0.0) as nothing:
        assert nothing is None


def test_the_pace_is_over_a_window_of_statuses_and_none_before_steps() -> None:
    pace = Pace()
    assert pace.rate(0.0, 0) is None  # start-up
    assert pace.rate(1.0, 100) is None  # one status with steps: no pace yet
    assert pace.rate(1.5, 600) == 1000.0
    for second in range(2, 12):
        rate = pace.rate(float(second), 600 + 1000 * (second - 1))
    assert rate == pytest.approx(1000.0)
    # 10,000 steps in the last second: over the window (from the status at 7 s, 6,600 steps)
    assert pace.rate(12.0, 20_600) == (20_600 - 6_600) / 5
    assert pace.rate(13.0, 50) is None  # a count that fell back starts again


def test_the_tally_counts_each_ended_episode_once_and_keeps_the_open_ones_to_read_again() -> None:
    # (id, steps, ended): 4 is still open, 5 ended after it; 2 was open before and ended now
    before = PhaseTally(0, 1, seen=3, still_open=(2,), episodes=1, steps=10)
    seen, still_open, total, ended = count_on([(4, None, False), (5, 7, True), (2, 9, True)], before)
    assert (seen, still_open, total, ended) == (5, (4,), (3, 26), [5, 2])
    assert count_on([], before) == (3, (), (1, 10), [])  # (an open one deleted since is read no more)


def test_a_display_that_fails_is_turned_off_and_the_runs_go_on(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Progress):
        def refresh(self, now: float) -> None:
            raise ValueError("the terminal went away")

    control = LiveControl(SimpleNamespace(_governors=[], progress=Broken([])))  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(control.watch(), timeout=10))  # (it returns: nothing more to show)
    assert "the progress display failed and is off (the runs go on): the terminal went away" in caplog.text
    control.ended(SimpleNamespace(index=0), SimpleNamespace(status="FINISHED"))  # type: ignore[arg-type]


def _desk(moves_on_while: str) -> tuple[ControlDesk, SimpleNamespace]:
    """A governor's control desk over a shell that is in phase 0 (train, 40 episodes) and
    moves on to phase 1 while the status reads the store: ``tally`` or ``workers``."""
    machine = SimpleNamespace(phase=0, history=[], state=SimpleNamespace(name="RUNNING"), phase_step=None)
    phases = [
        SimpleNamespace(name=name, mode=name, episodes=episodes, actors=1, max_steps=None, environments=[1])
        for name, episodes in (("train", 40), ("test", 5))
    ]

    def move_on() -> None:
        machine.phase, machine.history = 1, [PhaseSummary("train", "train", "completed", 40, 800)]

    async def read_tally(tally: PhaseTally, last: int) -> PhaseTally:
        if moves_on_while == "tally":
            move_on()
        return PhaseTally(tally.phase, 7, 40, (), 40, 800, {40: {"red": 1.0}})

    async def worker_progress() -> list[dict[str, Any]]:
        said = [{"worker": 0, "of_phase": machine.phase}]  # (what the machine says before the store's read)
        if moves_on_while == "workers":
            move_on()
        return said

    snapshots = SimpleNamespace(held=None, progress=SimpleNamespace(last_snapshot=None, snapshots=0))
    live = SimpleNamespace(snapshots=snapshots, read_tally=read_tally, worker_progress=worker_progress)
    shell = SimpleNamespace(machine=machine, spec=SimpleNamespace(uid="r", phases=phases), run_id=1, live=live,
                            started=0.0, writer=SimpleNamespace(counts={"environment_steps": 0}))  # fmt: skip
    return ControlDesk(shell, None), machine  # type: ignore[arg-type]


@pytest.mark.parametrize("moves_on_while", ["tally", "workers"])
def test_a_status_is_of_the_phase_it_began_in_when_the_phase_ends_while_the_store_is_read(moves_on_while: str) -> None:
    desk, machine = _desk(moves_on_while)
    said = asyncio.run(desk.status())
    assert machine.phase == 1  # (it did move on)
    assert (said["phase"], said["phase_index"], said["phase_episodes"], said["history"]) == ("train", 0, 40, [])
    assert said["workers"] == [{"worker": 0, "of_phase": 0}]
    assert said["planned"] == PhasePlan("train", "train", 40, 1).as_status() == {
        "episodes": 40, "episodes_per_worker": 40, "workers": 1, "max_steps": None, "steps": None
    }  # fmt: skip
    assert said["returns"] == {"red": 1.0}
    # The display then pins the phase's pace at phase 0, not at phase 1 with phase 0's count.
    shown = Progress([("r", TWO_PHASES)])
    shown.update(0, said, 1.0)
    assert shown.runs[0].pace == (0, 1.0, 40)


def test_a_status_answered_is_logged_by_its_size_not_its_figures(caplog: pytest.LogCaptureFixture) -> None:
    desk, _ = _desk("neither")
    sent: list[bytes] = []

    class Socket:
        async def send(self, data: bytes) -> None:
            sent.append(data)

    with caplog.at_level(logging.DEBUG, logger="arl.governor"):
        asyncio.run(desk._reply(Socket(), ControlRequest(1, "status", {})))
    assert f"control request status answered: {len(sent[0]):,} bytes" in caplog.text
    assert "history" not in caplog.text
    assert "planned" not in caplog.text


def test_off_a_terminal_the_end_lines_no_status_said_come_from_the_outcome() -> None:
    said: list[str] = []
    shown = progress.PlainProgress([("r", TWO_PHASES)], said.append)
    shown.update(0, status(0, 50, history=[]), 1.0)
    shown.update(0, status(1, 0, history=[ended_phase("train", 100, 1000, red=1.5, blue=-1.5)]), 2.0)
    outcome = SimpleNamespace(
        status="FINISHED", episodes=105, steps=1050,
        history=[ended_phase("train", 100, 1000, red=1.5, blue=-1.5), ended_phase("test", 5, 50, red=0.5)],
    )  # fmt: skip
    shown.ended(0, outcome, 3.0)  # (the test phase ended after the last status)
    assert [line.split(":")[0] for line in said] == [
        "[r] phase 1/2 train (train)", "[r] train 50%", "[r] phase 1/2 train ended (completed)",
        "[r] phase 2/2 test (test)", "[r] phase 2/2 test ended (completed)",
    ]  # fmt: skip
    assert (
        said[-1] == "[r] phase 2/2 test ended (completed): 5 episodes, 50 steps; mean return red 0.5; 0:00:02 elapsed"
    )
    shown.ended(0, outcome, 4.0)  # (said once)
    assert len(said) == 5
    # An ended run's row names its last phase, whatever its last status said.
    assert shown.rows(4.0)[0][1:3] == ("FINISHED", "2/2 test")


def test_a_row_says_when_no_status_came_for_a_while_and_stops_counting_down() -> None:
    shown = Progress([("r", TWO_PHASES)])
    shown.update(0, status(0, 10), 100.0)
    shown.update(0, status(0, 30), 102.0)
    shown.missed(0, 103.0)  # (one missed: not said yet)
    assert shown.rows(104.0)[0][1] == "RUNNING"
    late = shown.rows(102.0 + progress.STALE_AFTER + 2)[0]
    assert (late.state, late.left) == ("RUNNING (no status for 12 s)", "?")
    shown.update(0, status(0, 40), 115.0)  # one came: the row is as before
    assert shown.rows(115.0)[0].state == "RUNNING"
    assert shown.rows(115.0)[0].left != "?"


def test_the_live_table_shows_at_most_its_limit_of_rows_those_that_go_first_and_says_how_many_more() -> None:
    shown = Progress([(f"run{i}", TWO_PHASES) for i in range(1000)])
    for i in range(0, 600, 3):  # 200 ended, in turn (the latest last), every other one FAILED
        shown.ended(i, SimpleNamespace(status="FAILED" if i % 2 else "FINISHED", episodes=1, steps=2), float(i))
    for i in (5, 500, 998):
        shown.update(i, status(0, 1), 700.0)
    rows, more = liveprogress.shown_rows(shown.runs, 700.0, 10)
    # the 3 that go, then the 6 latest that ended (the last line says the rest), in the runs' order
    assert [r.run for r in rows] == [f"run{i}" for i in (5, 500, 582, 585, 588, 591, 594, 597, 998)]
    assert more == "... and 991 more: 97 FAILED, 97 FINISHED, 797 waiting"
    # (all fit: all, in order)
    assert liveprogress.shown_rows(shown.runs[:10], 700.0, 10) == (shown.rows(700.0)[:10], "")


def test_the_live_table_of_a_large_sweep_draws_only_some_rows_and_only_when_they_changed(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("LINES", "50")
    runs = [(f"sweep-{i:04d}", TWO_PHASES) for i in range(1000)]
    with progress.shown("live", runs, terminal.out, lambda: 0.0) as shown:
        assert isinstance(shown, liveprogress.LiveProgress)
        for i in range(0, 1000, 10):
            shown.update(i, status(0, 3, phase_steps=300), 1.0)
        shown.refresh(1.2)
        said = terminal.said()
        shown.refresh(1.4)  # (nothing changed: nothing drawn)
        assert terminal.said() == ""
    drawn = said[said.rindex("... and ") :]  # its last drawing (the first: before any status)
    assert drawn.startswith("... and 961 more: 61 RUNNING, 900 waiting")
    assert drawn.count("sweep-") == progress.MAX_ROWS - 1


def test_a_display_that_fails_as_it_stops_says_so_and_raises_nothing(
    terminal: Terminal, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise ValueError("the terminal went away")

    with progress.shown("live", [("r", TWO_PHASES)], terminal.out, lambda: 0.0) as shown:
        assert isinstance(shown, liveprogress.LiveProgress)
        shown.update(0, status(0, 1), 0.0)
        monkeypatch.setattr(liveprogress, "render", broken)
    assert "the progress display failed: the terminal went away" in caplog.text
    assert not shown._live.is_started
    assert terminal.said().endswith("\x1b[?25h")  # (the cursor shown all the same)


def test_what_the_runs_processes_write_prints_above_the_table_a_line_at_a_time_and_all_of_it(
    terminal: Terminal,
) -> None:
    said: list[str] = []

    def seen(text: str) -> bool:
        said.append(terminal.said())
        return text in "".join(said)

    assert Progress([]).children_output() is None  # (off a terminal they write where arl-run does)
    with progress.shown("live", [("r", TWO_PHASES)], terminal.out, lambda: 0.0) as shown:
        assert shown is not None
        relay = shown.children_output()
        assert relay is not None
        child = os.dup(relay.terminal())  # (as the fork server's children have it)
        relay.handed_over()
        assert os.isatty(child)  # (so C's stdio there flushes a line at a time)
        snowman = "\N{SNOWMAN}".encode()
        os.write(child, b"first line\nsecond, " + snowman[:2])  # (a line, and the start of one)
        os.write(child, snowman[2:] + b" its end\n")
        poll_for(lambda: seen("its end"), what="two whole lines")
        os.write(child, b"\r 10% no end yet")
        # (over the table, as the line it is: what follows its last "\r")
        poll_for(
            lambda: seen("\x1b[2K 10% no end yet\r\n"),
            what=f"a line without its end after {childoutput.PARTIAL_WAIT} s",
        )
        os.write(child, b"\r100% last words")
        os.close(child)  # (the runs end: what is left is shown before the table's last drawing)
    said.append(terminal.said())
    text = "".join(said)
    last_table = text.rindex("steps/s")
    for line in ("first line\r\n", "second, \N{SNOWMAN} its end\r\n", "100% last words\r\n"):
        assert -1 < text.find(line) < last_table, text
    assert text.count("first line") == 1
    assert "100% last words" not in text[last_table:]  # (printed above, no more over the table)


def test_the_runs_processes_stderr_is_taken_only_where_arl_runs_stderr_is_the_tables_terminal(
    terminal: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stderr, taken in ((io.StringIO(), False), (terminal.out, True)):  # (arl-run x.yml 2>err.log; both on it)
        monkeypatch.setattr(sys, "stderr", stderr)
        with progress.shown("live", [("r", TWO_PHASES)], terminal.out, lambda: 0.0) as shown:
            assert shown is not None
            relay = shown.children_output()
            assert relay is not None
            assert relay.takes_stderr is taken
            relay.handed_over()
