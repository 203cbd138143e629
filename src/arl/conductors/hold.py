"""A controller's side of the pause barrier and of a live run's snapshots.

The governor pauses a run by sending every controller ``pause <token>`` down its
control pipe. A controller reads its pipe every :data:`~arl.conductors.service.PULSE_INTERVAL`
while it steps (``Service.pulse``), and stops at its next step boundary (a
:class:`~arl.conductors.steploop.Store` with ``boundary``; with ``envs_per_worker``, once
every copy is at one): it sends the records it holds and then ``Flush(token)`` down its
store link, which the store writer answers to the governor once everything before it is
committed. That is the acknowledgement: when the writer has every controller's token
(or the worker has ended its phase), the run is paused and the store holds every step
taken before the pause, and none after.

While held, the controller keeps its broker link alive and waits for more words:
``save <token> <folder>`` writes its loop's and environments' state into
``<folder>/workers/<worker>/`` and answers ``saved <token>`` (or ``save-failed <token>
<why>``) up the pipe; ``resume <token>`` goes on stepping; ``stop`` ends the episode
``interrupted`` as a stop always does. A pause whose token was resumed already (the
governor gave up on that attempt) is dropped, so a word meant for an earlier phase never
holds a later one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import zmq

from arl import time as arl_time
from arl.proc.child import ChildContext

from .service import Service

log = logging.getLogger("arl.controller")

HOLD_POLL = 0.2  # seconds between heartbeats to the broker while held


def parse(word: bytes) -> tuple[str, int, str]:
    """``b"save 12 /a b"`` -> ``("save", 12, "/a b")``. Raises ValueError on anything else."""
    kind, _, rest = word.decode().partition(" ")
    token, _, tail = rest.partition(" ")
    return kind, int(token), tail


def new_folder(path: Path) -> Path:
    """The empty folder a component's ``save_state`` writes into (made here, never reused)."""
    path.mkdir(parents=True, exist_ok=False)
    return path


class Hold:
    """The pause words of one controller process."""

    def __init__(self, ctx: ChildContext, service: Service) -> None:
        self.ctx, self.service = ctx, service
        self.token: int | None = None  # the pause asked for and not yet resumed
        self.resumed: set[int] = set()

    def asked(self) -> bool:
        """Whether a pause is asked for (reads the words ``Service.pulse`` took off the pipe)."""
        self._read()
        return self.token is not None

    def _read(self) -> list[tuple[str, int, str]]:
        """Take the words waiting; pause and resume words are applied here, the rest returned."""
        if not self.ctx.words:  # (every step asks: nothing to do, nothing made)
            return []
        rest = []
        words, self.ctx.words[:] = list(self.ctx.words), []
        for word in words:
            try:
                kind, token, tail = parse(word)
            except ValueError:
                log.warning("a controller got a word it does not know on its control pipe: %r", word[:80])
                continue
            if kind == "pause" and token not in self.resumed:
                self.token = token
            elif kind == "resume":
                self.resumed.add(token)
                if self.token == token:
                    self.token = None
            else:
                rest.append((kind, token, tail))
        return rest

    def hold(self, flush: Callable[[int], None], save: Callable[[Path], None]) -> bool:
        """Hold at this step boundary until resumed; True if asked to stop meanwhile.
        ``flush(token)`` sends what is held and the token down the store link; ``save``
        writes the loop's state into a snapshot's staging folder."""
        assert self.token is not None
        acked = self.token
        flush(acked)
        clock = arl_time.clock()
        clock.pause()  # the run's scaled time stands still while it is paused
        try:
            return self._held(acked, flush, save)
        finally:
            clock.resume()

    def _held(self, acked: int, flush: Callable[[int], None], save: Callable[[Path], None]) -> bool:
        log.debug("worker paused (token %d)", acked)
        poller = zmq.Poller()
        poller.register(self.ctx.control_fd, zmq.POLLIN)
        while True:
            if self.ctx.stop_requested():
                return True
            for kind, token, tail in self._read():
                if kind == "save":
                    self._save(token, Path(tail), save)
                else:
                    log.warning("a controller got %r while paused; it takes pause, resume, save and stop", kind)
            if self.token is None:
                log.debug("worker resumed")
                return False
            if self.token != acked:  # a new attempt while held: acknowledge it too
                acked = self.token
                flush(acked)
            poller.poll(int(HOLD_POLL * 1000))
            self.service.worker.tick()  # keep the broker's heartbeat while held

    def _save(self, token: int, folder: Path, save: Callable[[Path], None]) -> None:
        if token != self.token:
            self.ctx.tell(f"save-failed {token} this controller is not paused for that snapshot".encode())
            return
        try:
            save(folder)
        except Exception as exc:  # a component's save_state: the snapshot fails, the run goes on
            log.error("saving the worker's state failed: %s", exc, exc_info=True)
            why = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            self.ctx.tell(f"save-failed {token} {why}".encode())
            return
        self.ctx.tell(f"saved {token}".encode())
