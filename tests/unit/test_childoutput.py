"""What the runs' processes write while the live table is up (arl.childoutput): what is
read, worked out on a given clock (:class:`Pending`), and the relay's thread on a real
pseudo-terminal with a ``show`` that records what it is given."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest

from arl import childoutput
from arl.childoutput import GATHER, PARTIAL_CAP, PARTIAL_WAIT, OutputRelay, Pending
from arl.testing import poll_for

pytestmark = pytest.mark.timeout(30)


class Screen:
    """A ``show`` that records each call: when, the whole lines, the unfinished line."""

    def __init__(self, cost: float = 0.0) -> None:
        self.calls: list[tuple[float, str | None, str]] = []
        self.cost = cost  # (seconds a call takes, as a print above a large table does)
        self.fail = 0  # this many calls fail first

    def __call__(self, lines: str | None, unfinished: str) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the display broke")
        self.calls.append((time.monotonic(), lines, unfinished))
        time.sleep(self.cost)

    def lines(self) -> list[str]:
        return [line for _, text, _ in self.calls if text is not None for line in text.split("\n")]

    def unfinished(self) -> list[str]:
        return [text for _, _, text in self.calls if text]


@contextlib.contextmanager
def relayed(screen: Screen) -> Iterator[tuple[OutputRelay, int]]:
    """A relay, and a writer's end of its terminal (as a process of the runs has it)."""
    relay = OutputRelay(screen, 80, 24)
    writer = os.dup(relay.terminal())
    relay.handed_over()
    try:
        yield relay, writer
    finally:
        with contextlib.suppress(OSError):
            os.close(writer)
        assert relay.finish(5.0)


def test_a_progress_bar_without_newlines_shows_while_it_goes_as_one_line_replaced_not_piled_up() -> None:
    screen, going = Screen(), threading.Event()
    with relayed(screen) as (_, writer):

        def bar() -> None:  # (tqdm: "\r" and the bar again, every 50 ms, no newline)
            for percent in range(1000):
                if not going.is_set():
                    return
                os.write(writer, f"\r{percent:3d}%|{'#' * (percent % 20):20}|".encode())
                time.sleep(0.05)

        going.set()
        thread = threading.Thread(target=bar)
        thread.start()
        try:
            poll_for(lambda: len(screen.unfinished()) >= 2, what="the bar shown while it goes, twice")
        finally:
            going.clear()
            thread.join()
        os.write(writer, b"\r100%|####################|\ndone\n")
        poll_for(lambda: "done" in screen.lines(), what="the lines after the bar")
    for shown in screen.unfinished():
        assert "\r" not in shown, shown
        assert shown.count("%") == 1, shown  # (one drawing of the bar, the latest)
    assert screen.lines() == ["100%|####################|", "done"]  # (no copies printed above)
    assert screen.calls[-1][2] == ""  # (the bar's line ended: nothing unfinished shown any more)


def test_what_an_unfinished_line_keeps_is_its_last_drawing_and_at_most_a_cap() -> None:
    pending = Pending()
    for i in range(10_000):  # (hours of a bar: its text does not grow)
        pending.add(f"\rstep {i}".encode(), i * 0.001)
    assert pending.take(10.0) == (None, "step 9999")
    pending.add(b"\r", 10.0)  # (a bar that ends its drawings with "\r" keeps the last)
    assert pending.take(10.0) == (None, "step 9999")
    pending.add(b"\n" + b"." * (PARTIAL_CAP + 1), 11.0)  # (a line with no end in sight: printed as it is)
    lines, unfinished = pending.take(11.0)
    assert lines is not None
    assert lines.split("\n") == ["step 9999", "." * (PARTIAL_CAP + 1)]
    assert unfinished == ""
    pending.add(b"50%\r\n", 12.0)  # (a "\r" ending a line wipes nothing)
    assert pending.take(12.0) == ("50%", "")


def test_an_unfinished_line_waits_a_while_for_its_end_before_it_is_shown() -> None:
    pending = Pending()
    pending.add(b"Loading", 1.0)
    assert pending.due(childoutput.GAP) == pytest.approx(1.0 + PARTIAL_WAIT)
    assert pending.take(1.1) == (None, "")  # (not yet: most lines end within it)
    pending.add(b"... done\n", 1.15)
    assert pending.take(1.2) == ("Loading... done", "")
    assert pending.due(childoutput.GAP) is None


def test_lines_after_a_quiet_spell_go_at_once_and_right_after_a_print_wait_the_gap() -> None:
    pending = Pending()
    pending.last = 0.0
    pending.add(b"first\n", 10.0)
    assert pending.due(0.1) == pytest.approx(10.0 + GATHER)
    pending.take(10.02)
    pending.last = 10.03
    pending.add(b"second\n", 10.04)
    assert pending.due(0.3) == pytest.approx(10.33)  # (a print that cost 30 ms: 0.3 s before the next)
    pending.add(b"x" * childoutput.BATCH + b"\n", 10.05)
    assert pending.due(0.3) < 10.05  # (a full batch goes at once)


def test_a_chatty_writer_is_printed_in_few_batches_fewer_when_printing_costs_more() -> None:
    screen = Screen(cost=0.02)  # (a gap of 0.2 s after each print)
    with relayed(screen) as (_, writer):
        until = time.monotonic() + 0.6
        count = 0
        while time.monotonic() < until:  # (a line every 5 ms, 120 at most)
            os.write(writer, f"step {count}\n".encode())
            count += 1
            time.sleep(0.005)
        os.close(writer)
    assert screen.lines() == [f"step {i}" for i in range(count)]  # (all of them, in order)
    starts = [when for when, _, _ in screen.calls][:-1]  # (the last: what was left once the writer closed)
    assert len(starts) <= 4, len(starts)  # (before: a batch every 40 ms, 15)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.15


def test_a_lone_blank_line_is_shown() -> None:
    screen = Screen()
    with relayed(screen) as (_, writer):
        for line in (b"a\n", b"\n", b"b\n"):
            os.write(writer, line)
            said = len(screen.lines())
            poll_for(lambda said=said: len(screen.lines()) > said, what=f"{line!r} shown")
    assert screen.lines() == ["a", "", "b"]


def test_the_relay_outlives_a_failing_display_and_its_own_failures(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, "arl.executor")
    screen = Screen()
    screen.fail = 1
    broken = [True]
    add = Pending.add

    def add_once_broken(self: Pending, data: bytes, now: float) -> None:
        if broken.pop() if broken else False:
            raise ValueError("a bug in the relay")
        add(self, data, now)

    with relayed(screen) as (relay, writer):
        os.write(writer, b"around the display\n")
        poll_for(lambda: "around the display" in capfd.readouterr().out, what="the line written as it is")
        monkeypatch.setattr(Pending, "add", add_once_broken)
        os.write(writer, b"lost to the bug\n")
        poll_for(lambda: "a bug in the relay" in caplog.text, what="the relay's failure logged")
        os.write(writer, b"still shown\n")  # (the writer is not failed: the relay reads on)
        poll_for(lambda: "still shown" in screen.lines(), what="the line after the failures")
        assert relay._thread.is_alive()
    assert "the runs' output went around the display: the display broke" in caplog.text


def test_a_process_that_outlives_the_runs_is_named_and_told_its_later_output_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    relay = OutputRelay(Screen(), 80, 24)
    survivor = os.dup(relay.terminal())  # (one the runs started and left running: this process)
    try:
        assert not relay.finish(0.05)
        assert f"still writes to their terminal after they ended: {os.getpid()} (" in caplog.text
        assert "once arl-run has exited is lost" in caplog.text
    finally:
        os.close(survivor)
    assert relay.finish(5.0)


def test_the_runs_terminal_takes_the_size_of_the_tables() -> None:
    relay = OutputRelay(Screen(), 80, 24)
    try:
        assert os.get_terminal_size(relay.terminal()) == (80, 24)
        relay.resize(132, 50)  # (the user's terminal was resized)
        assert os.get_terminal_size(relay.terminal()) == (132, 50)
    finally:
        assert relay.finish(5.0)
