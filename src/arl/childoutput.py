"""What the runs' processes write to their own stdout (and stderr, where it is the same
terminal: file descriptors 1 and 2; a user's ``print``, an import banner, a C library's
warnings, a tqdm bar) while ``arl-run``'s live table is up: printed above the table,
never through it.

The processes are forked by the fork server (:mod:`arl.proc.forkserver`), so they write
where its descriptors 1 and 2 point. :class:`OutputRelay` makes a pseudo-terminal and the
executor hands its other end to the server (:meth:`arl.proc.forkclient.ForkServer.send_output`)
before the first run starts: every process forked from then on writes to it, and a
thread here reads it and shows what comes through the live table. A pseudo-terminal
rather than a pipe, so that the processes still write to a terminal (C's stdio buffers a
line, not 4 KiB, and a process that ends with ``os._exit`` loses nothing; libraries that
colour a terminal's text still do). The thread drains it whatever the table does, so a
writer never waits on the executor's event loop. Off a terminal (plain lines, ``-q``)
none is made: the processes write where ``arl-run`` does.

What is read is worked out by :class:`Pending` (no I/O, its clock given): whole lines
are printed above the table in batches, at most one batch a :data:`GAP` (longer when a
print costs more: each draws the table again); a line left unfinished shows, once it is
:data:`PARTIAL_WAIT` old, as a line of its own over the table that is replaced as it
grows, and only what follows its last carriage return (a progress bar's ``\\r``, as a
terminal shows it).
"""

from __future__ import annotations

import codecs
import fcntl
import logging
import math
import os
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import TypeVar

from arl.terminal import printable

_T = TypeVar("_T")
log = logging.getLogger("arl.executor")

PARTIAL_WAIT = 0.2  # seconds an unfinished line waits for its end before it is shown as it is
PARTIAL_CAP = 1 << 16  # characters of an unfinished line kept; more, and it is printed as it is
DRAIN = 3.0  # seconds the relay waits, once the runs have ended, for every writer to close
# Each print above the table draws the table again (~12 ms under 40 rows), so lines are
# printed in batches: the first GATHER seconds after a quiet spell, then at most one
# batch every GAP seconds, or COST_FACTOR times what the last print took if that is more
# (MAX_GAP at most). A batch of BATCH characters is printed without waiting.
GATHER = 0.02
GAP = 0.1
COST_FACTOR = 10.0
MAX_GAP = 1.0
BATCH = 1 << 20
_CHUNK = 1 << 16

# show(lines, unfinished): ``lines``, whole lines to print for good (joined by "\n", the
# last one's newline taken off; "" is one blank line), None if none; ``unfinished``, the
# line that has not ended yet, to show until it does ("" for none).
Show = Callable[[str | None, str], None]


def _last_part(text: str) -> str:
    """What a terminal leaves of ``text`` on its line: what follows its last carriage
    return (one that ends it wipes nothing: ``abc\\r`` is ``abc``)."""
    return text.rstrip("\r").rpartition("\r")[2] if "\r" in text else text


class Pending:
    """What has been read and not yet shown. ``now`` is :func:`time.monotonic`'s."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lines: list[str] = []  # whole lines not shown yet
        self._size = 0  # their characters
        self._lines_since: float | None = None  # when the first of them came
        self._partial = ""  # the unfinished line: what follows its last "\r" at most
        self._partial_since: float | None = None  # when its first byte came
        self._shown = ""  # the unfinished line as it is shown now
        self.last = -math.inf  # when the last batch was shown

    def add(self, data: bytes, now: float) -> None:
        text = self._decoder.decode(data)
        head, newline, tail = text.rpartition("\n")
        if newline:
            self._whole((self._partial + head).split("\n"), now)
            self._partial, self._partial_since = "", None
        self._unfinished(tail, now)

    def _whole(self, lines: list[str], now: float) -> None:
        self._lines.extend(_last_part(line) for line in lines)
        self._size += sum(map(len, lines)) + len(lines)
        if self._lines_since is None:
            self._lines_since = now

    def _unfinished(self, text: str, now: float) -> None:
        if not text:
            return
        if self._partial_since is None:
            self._partial_since = now
        kept = self._partial + text
        # Only what follows the last "\r" that has something after it: a progress bar
        # redrawn for hours keeps one drawing, not all of them.
        cut = kept.rstrip("\r").rfind("\r")
        self._partial = kept[cut + 1 :]
        if len(self._partial) > PARTIAL_CAP:  # (no end in sight: printed as it is)
            self._whole([_last_part(self._partial)], now)
            self._partial, self._partial_since = "", None

    def due(self, gap: float) -> float | None:
        """When the next batch is to be shown (maybe past); None while there is none."""
        times = []
        if self._lines_since is not None:
            full = self._size >= BATCH
            times.append(-math.inf if full else max(self._lines_since + GATHER, self.last + gap))
        if _last_part(self._partial) != self._shown:
            began = -math.inf if self._partial_since is None else self._partial_since
            times.append(max(began + PARTIAL_WAIT, self.last + gap))
        return min(times) if times else None

    def take(self, now: float) -> tuple[str | None, str]:
        """The batch to show now: whole lines (None if none) and the unfinished line (""
        until it is :data:`PARTIAL_WAIT` old)."""
        lines = "\n".join(self._lines) if self._lines else None
        self._lines, self._size, self._lines_since = [], 0, None
        old = self._partial_since is not None and now >= self._partial_since + PARTIAL_WAIT
        self._shown = _last_part(self._partial) if old else ""
        return lines, self._shown

    def end(self) -> tuple[str | None, str] | None:
        """Everything left, the unfinished line as a whole one; None if nothing is left to show."""
        self._unfinished(self._decoder.decode(b"", final=True), 0.0)
        if self._partial:
            self._whole([_last_part(self._partial)], 0.0)
        if not self._lines and not self._shown:
            return None
        lines = "\n".join(self._lines) if self._lines else None
        self._lines, self._shown = [], ""
        return lines, ""


class OutputRelay:
    """A pseudo-terminal whose output ``show`` gets (:data:`Show`), from a thread of its own.
    ``takes_stderr``: the fork server is to make it its stderr too, not only its stdout."""

    def __init__(self, show: Show, columns: int, lines: int, *, takes_stderr: bool = True) -> None:
        self._show = show
        self.takes_stderr = takes_stderr
        self._main, other = os.openpty()
        try:
            self.name = os.ttyname(other)  # (to find who holds it: holders)
        except OSError:
            os.close(self._main)
            os.close(other)
            raise
        self._open = threading.Lock()  # held to use self._main from another thread
        self._closed = False
        try:
            tty.setraw(other)  # (bytes as they are written: no "\n" made "\r\n")
        except OSError as exc:
            log.debug("the runs' terminal keeps its defaults: %s", exc)
        self._other: int | None = other
        self.resize(columns, lines)
        self._failed = False
        self._thread = threading.Thread(target=self._pump, name="arl-child-output", daemon=True)
        self._thread.start()

    def terminal(self) -> int:
        """The end the processes write to, for the fork server; :meth:`handed_over` once it has it."""
        assert self._other is not None
        return self._other

    def handed_over(self) -> None:
        """Close this process's copy of the processes' end: once they have all closed
        theirs (ended), the relay has read everything."""
        if self._other is not None:
            os.close(self._other)
            self._other = None

    def resize(self, columns: int, lines: int) -> None:
        """The size the processes find if they ask (no SIGWINCH: it is nobody's controlling terminal)."""
        with self._open:
            if self._closed:
                return
            try:
                fcntl.ioctl(self._main, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
            except OSError as exc:  # (a size it cannot take is no reason to go without)
                log.debug("the runs' terminal keeps its size: %s", exc)

    def finish(self, timeout: float = DRAIN) -> bool:
        """Wait until everything written has been shown (every writer gone); False, and
        a warning that names them, if some still hold the terminal after ``timeout`` (one
        a component started and left running): what they write is still shown for as
        long as this process lives, and lost after (their writes then fail)."""
        self.handed_over()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        log.warning(
            "a process the runs started still writes to their terminal after they ended: %s; "
            "what it writes once arl-run has exited is lost",
            ", ".join(self.holders()) or "(not one this user may look at)",
        )
        return False

    def holders(self) -> list[str]:
        """The processes that have the processes' end open, as ``pid (command line)``
        (those this user may look at)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(_link(f"/proc/{pid}/fd/{fd}") == self.name for fd in fds):
                    with open(f"/proc/{pid}/cmdline", "rb") as file:
                        command = file.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                    found.append(f"{pid} ({printable(command[:200])})")
            except OSError:  # gone meanwhile, or another user's
                continue
        return found

    def _pump(self) -> None:
        pending, gap, open_ = Pending(), GAP, True
        try:
            while open_:
                due = pending.due(gap)
                wait = None if due is None else max(0.0, due - time.monotonic())
                if select.select([self._main], [], [], wait)[0]:
                    data, open_ = self._read()
                    self._safely(pending.add, data, time.monotonic())
                due = pending.due(gap)
                if due is not None and due <= time.monotonic():
                    gap = self._batch(pending)
            left = self._safely(pending.end)
            if left is not None:
                self._say(*left)
        finally:
            with self._open:
                self._closed = True
                os.close(self._main)

    def _read(self) -> tuple[bytes, bool]:
        """What has come, and False once every writer has closed its end."""
        try:
            data = os.read(self._main, _CHUNK)
        except OSError:  # EIO: every writer has closed its end
            data = b""
        return data, bool(data)

    def _batch(self, pending: Pending) -> float:
        """Show what is due; the gap to leave before the next batch."""
        began = time.monotonic()
        batch = self._safely(pending.take, began)
        if batch is not None:
            self._say(*batch)
        pending.last = time.monotonic()
        return min(MAX_GAP, max(GAP, COST_FACTOR * (pending.last - began)))

    def _safely(self, call: Callable[..., _T], *args: object) -> _T | None:
        """``call`` whose failure is logged, not raised: the thread must go on reading,
        or the processes' next writes would wait, then fail, for good."""
        try:
            return call(*args)
        except Exception as exc:
            self._failure("the relay of the runs' output lost some of it (it reads on)", exc)
            return None

    def _say(self, lines: str | None, unfinished: str) -> None:
        try:
            self._show(lines, unfinished)
        except Exception as exc:  # the display failed: the text still goes to the terminal
            self._failure("the runs' output went around the display", exc)
            if lines is not None:
                _write(1, lines + "\n")

    def _failure(self, what: str, exc: Exception) -> None:
        if not self._failed:  # (once with its traceback; the output keeps coming)
            log.warning("%s: %s", what, exc, exc_info=True)
        else:
            log.debug("%s: %s", what, exc)
        self._failed = True


def _write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        log.debug("the runs' output is lost: %s", exc)


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None
