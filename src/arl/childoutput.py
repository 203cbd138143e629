"""What the runs' processes write to their own stdout and stderr (file descriptors 1 and
2: a user's ``print``, an import banner, a C library's warnings) while ``arl-run``'s live
table is up: printed above the table, never through it.

The processes are forked by the fork server (:mod:`arl.proc.forkserver`), so they write
where its descriptors 1 and 2 point. :class:`OutputRelay` makes a pseudo-terminal and the
executor hands its other end to the server (:meth:`arl.proc.forkclient.ForkServer.send_output`)
before the first run starts: every process forked from then on writes to it, and a
thread here reads it and prints each batch of whole lines through the live table's
console. A pseudo-terminal rather than a pipe, so that the processes still write to a
terminal (C's stdio buffers a line, not 4 KiB, and a process that ends with ``os._exit``
loses nothing; libraries that colour a terminal's text still do). The thread drains it
whatever the table does, so a writer never waits on the executor's event loop; a line
left unfinished is printed once nothing more came for :data:`PARTIAL_WAIT`. Off a
terminal (plain lines, ``-q``) none is made: the processes write where ``arl-run`` does.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable

log = logging.getLogger("arl.executor")

PARTIAL_WAIT = 0.2  # seconds an unfinished line waits for its end before it is printed as it is
DRAIN = 3.0  # seconds the relay waits, once the runs have ended, for every writer to close
# What comes within GATHER seconds of the first byte (BATCH bytes at most) is printed at
# once: the table is drawn again once a batch, not once a line (a process that prints a
# line a step would otherwise wait on the table's redraws: 2,000 lines a second at most
# under 40 rows; gathered, several MB a second).
GATHER = 0.02
BATCH = 1 << 20
_CHUNK = 1 << 16


class OutputRelay:
    """A pseudo-terminal whose output ``show`` gets, a batch of whole lines at a time (the
    newline between lines kept, the last one taken off)."""

    def __init__(self, show: Callable[[str], None], columns: int, lines: int) -> None:
        self._show = show
        self._main, other = os.openpty()
        try:
            tty.setraw(other)  # (bytes as they are written: no "\n" made "\r\n")
            fcntl.ioctl(other, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        except OSError as exc:  # (a size it cannot take is no reason to go without)
            log.debug("the runs' terminal keeps its defaults: %s", exc)
        self._other: int | None = other
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

    def finish(self, timeout: float = DRAIN) -> bool:
        """Wait until everything written has been shown (every writer gone); False if
        one still holds the terminal after ``timeout`` (what it writes is still shown
        for as long as this process lives)."""
        self.handed_over()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending, open_ = "", True
        try:
            while open_:
                ready, _, _ = select.select([self._main], [], [], PARTIAL_WAIT if pending else None)
                if not ready:  # a line left unfinished for a while: shown as it is
                    self._say(pending)
                    pending = ""
                    continue
                chunk, open_ = self._gather()
                pending += decoder.decode(chunk)
                whole, newline, pending = pending.rpartition("\n")
                if newline:
                    self._say(whole)
            self._say(pending + decoder.decode(b"", final=True))
        finally:
            os.close(self._main)

    def _gather(self) -> tuple[bytes, bool]:
        """What has come and what comes within :data:`GATHER` seconds (:data:`BATCH` bytes
        at most), and False once every writer has closed its end."""
        data, until = bytearray(), time.monotonic() + GATHER
        while True:
            try:
                chunk = os.read(self._main, _CHUNK)
            except OSError:  # EIO: every writer has closed its end
                chunk = b""
            if not chunk:
                return bytes(data), False
            data += chunk
            left = until - time.monotonic()
            if len(data) >= BATCH or left <= 0 or not select.select([self._main], [], [], left)[0]:
                return bytes(data), True

    def _say(self, text: str) -> None:
        if not text:
            return
        try:
            self._show(text)
        except Exception as exc:  # the display failed: the text still goes to the terminal
            log.debug("the runs' output went around the display: %s", exc)
            with contextlib.suppress(OSError, ValueError):
                os.write(2, (text + "\n").encode("utf-8", "replace"))
