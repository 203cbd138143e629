"""The live table ``arl-run run`` shows on a terminal (rich's ``Live``): the runs as rows,
what they log and what their processes write printed above it. What goes in the rows is
:mod:`arl.progress`'s, worked out without I/O."""

from __future__ import annotations

import collections
import logging
import sys
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from arl.progress import COLUMNS, MAX_ROWS, MIN_ROWS, PhasePlan, Progress, Row, RunProgress, row
from arl.terminal import printable

if TYPE_CHECKING:
    from arl.childoutput import OutputRelay

log = logging.getLogger("arl.executor")


class LiveProgress(Progress):
    """On a terminal: the runs as rows of one table (rich's ``Live``), redrawn at each
    :meth:`refresh` where it changed, at most :data:`MAX_ROWS` rows (:func:`shown_rows`:
    rich renders every row, even those the terminal would crop, and the table is drawn on
    the executor's event loop). While it is on, log lines written to the terminal's stderr
    go through it, above the table (the console handler's stream is swapped, then back),
    and so does what the runs' processes write (:meth:`children_output`)."""

    def __init__(self, runs: Sequence[tuple[str, tuple[PhasePlan, ...]]], out: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(runs)
        self.console = Console(file=out)
        stderr_here = _same_terminal(out, sys.stderr)
        self._live = Live(
            console=self.console, auto_refresh=False, redirect_stdout=True, redirect_stderr=stderr_here,
            transient=False,
        )  # fmt: skip
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._drawn: tuple[list[Row], str] | None = None
        self._table: Any = ""  # (the table last rendered)
        # What the runs' processes write: to their stderr too only where arl-run's is
        # this terminal (with 2>file, their tracebacks go to that file as before).
        self._relay: OutputRelay | None = None
        self._relay_stderr = stderr_here
        self._unfinished = ""  # their line that has not ended yet, shown over the table
        self._drawing = threading.Lock()  # (the relay's thread and the event loop both draw)
        self._size = (self.console.width, self.console.height)

    def start(self, now: float) -> None:
        stderr = sys.stderr
        self._live.start()
        if sys.stderr is not stderr:  # rich redirected it: log lines print above the table
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                    self._swapped.append((handler, handler.setStream(sys.stderr)))
        self.refresh(now)

    def stop(self, now: float) -> None:
        """Draws the table once more and leaves it on the screen, the cursor shown. (A
        display that fails here says so: the runs have ended, their summary is to come.)"""
        try:
            if self._relay is not None:
                self._relay.finish()  # (what was written is shown above the table's last drawing)
            self.refresh(now)
        except Exception as exc:  # the display's own failure must never end arl-run
            log.warning("the progress display failed: %s", exc, exc_info=True)
        finally:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped = []
            self._live.stop()

    def children_output(self) -> OutputRelay | None:
        """A terminal for the runs' processes' own output, which prints above the table
        (:mod:`arl.childoutput`); None if none can be made (they write to ours)."""
        if self._relay is None:
            from arl.childoutput import OutputRelay

            try:
                self._relay = OutputRelay(self._above, *self._size, takes_stderr=self._relay_stderr)
            except OSError as exc:  # (no pseudo-terminal left: the runs go on all the same)
                log.debug("the runs' processes write to the terminal itself: %s", exc)
        return self._relay

    def _above(self, lines: str | None, unfinished: str) -> None:
        """From the relay's thread (:data:`arl.childoutput.Show`): print ``lines`` above the
        table, and show ``unfinished`` on a line over it (a progress bar redrawn in place),
        while the table is up."""
        from rich.text import Text

        with self._drawing:
            if unfinished != self._unfinished and self._live.is_started:
                self._unfinished = unfinished
                self._live.update(self._view(), refresh=True)
        if lines is not None:
            self.console.print(Text.from_ansi(lines), soft_wrap=True)  # (the terminal wraps: 10x faster)

    def _view(self) -> Any:
        """The table, under the runs' processes' unfinished line if there is one."""
        if not self._unfinished:
            return self._table
        from rich.console import Group
        from rich.text import Text

        line = Text.from_ansi(self._unfinished, no_wrap=True, overflow="ellipsis")
        return Group(line, self._table)

    def refresh(self, now: float) -> None:
        # (the terminal's lines less the table's title, head and rule, the blank line under
        # it and the cursor's, and one for a log line printed over it)
        size = (self.console.width, self.console.height)
        limit = max(MIN_ROWS, min(MAX_ROWS, size[1] - 6))
        drawn = shown_rows(self.runs, now, limit)
        if drawn != self._drawn:  # (unchanged, it is not drawn again)
            with self._drawing:
                self._table = render(*drawn)
                self._live.update(self._view(), refresh=True)
            self._drawn = drawn
        if size != self._size and self._relay is not None:  # (the terminal was resized)
            self._relay.resize(*size)
        self._size = size


def shown_rows(runs: Sequence[RunProgress], now: float, limit: int) -> tuple[list[Row], str]:
    """The rows of the live table, in the order of the runs, ``limit`` at most, and a line
    that says what it leaves out. When all do not fit: the runs that go first, then the
    latest that ended, then those waiting their turn."""
    if len(runs) <= limit:
        return [row(run, now) for run in runs], ""
    going = [i for i, run in enumerate(runs) if run.outcome is None and run.began is not None]
    ended = sorted((i for i, run in enumerate(runs) if run.outcome is not None), key=lambda i: -(runs[i].ended or 0))
    waiting = [i for i, run in enumerate(runs) if run.outcome is None and run.began is None]
    ranked = going + ended + waiting
    kept, left = ranked[: limit - 1], ranked[limit - 1 :]  # (one line, over the table, says how many more)
    states = collections.Counter(runs[i].state for i in left)
    more = f"... and {len(left):,} more: " + ", ".join(f"{n:,} {printable(state)}" for state, n in states.items())
    return [row(runs[i], now) for i in sorted(kept)], more


def render(rows: Sequence[Row], more: str = "") -> Any:
    """The rows as a rich table, ``more`` over it; every cell plain text (a ``[`` in a
    uid is no markup)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # (``more`` above the table: a terminal too short for the rows crops them, not it)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=Text(more) if more else None, title_justify="left")
    for name in COLUMNS:
        right = name in ("episodes", "steps", "steps/s", "elapsed", "left")
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    for cells in rows:
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _same_terminal(out: IO[str], err: IO[str]) -> bool:
    """Whether ``err`` is a terminal too (then log lines must not tear the live table)."""
    try:
        return out.isatty() and err.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: leave it alone
        return False
