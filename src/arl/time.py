"""Time as a run's components should read it (issue 12, item 7; pamiq-core's ``time``).

A :class:`ScaledClock` runs ``scale`` times as fast as the machine's monotonic clock
(``time_scale``: a simulated environment may run faster or slower than real time), and
stands still while paused, so that a pause (a snapshot) is not seen by the components
as time passing. Its state (how far it has run) goes into a snapshot and comes back
with it, so a resumed run's clock goes on where it stopped.

The module-level :func:`monotonic`, :func:`time` and :func:`sleep` read the process's
clock (:func:`clock`), which arl configures in each process of a run; outside a run it
is an unscaled clock that never pauses, so components can always call them.

Not wired into runs yet: the experiment file's ``time_scale`` and the pause barrier
that would pause these clocks come with the rest of issue 12.
"""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable
from typing import Any

__all__ = ["ScaledClock", "clock", "monotonic", "set_clock", "sleep", "time"]


class ScaledClock:
    """Monotonic seconds that advance ``scale`` times as fast as ``source`` and stop while
    paused. ``epoch``: the wall time (seconds since 1970) the clock reads as its start,
    for :meth:`time`. ``source`` and ``sleeper`` are injectable for tests."""

    def __init__(
        self,
        scale: float = 1.0,
        *,
        epoch: float | None = None,
        source: Callable[[], float] = _time.monotonic,
        sleeper: Callable[[float], None] = _time.sleep,
    ) -> None:
        if not 0 < scale < float("inf"):
            raise ValueError(f"a clock's scale must be more than 0 and finite, not {scale!r}")
        self.scale = float(scale)
        self._source, self._sleeper = source, sleeper
        self._epoch = _time.time() if epoch is None else float(epoch)
        self._lock = threading.Lock()
        self._elapsed = 0.0  # scaled seconds up to the last mark
        self._mark: float | None = source()  # the source's reading when it last started running

    @property
    def paused(self) -> bool:
        return self._mark is None

    def monotonic(self) -> float:
        """Scaled seconds since the clock started, pauses left out."""
        with self._lock:
            return self._now()

    def _now(self) -> float:
        if self._mark is None:
            return self._elapsed
        return self._elapsed + (self._source() - self._mark) * self.scale

    def time(self) -> float:
        """Seconds since 1970 as the scaled clock counts them from its epoch."""
        return self._epoch + self.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds / scale`` of the machine's time: ``seconds`` of scaled time
        while the clock runs (a run pauses only between steps, when no component sleeps)."""
        if seconds > 0:
            self._sleeper(seconds / self.scale)

    def pause(self) -> None:
        """Stop the clock (a run pausing at a step boundary); idempotent."""
        with self._lock:
            if self._mark is not None:
                self._elapsed = self._now()
                self._mark = None

    def resume(self) -> None:
        """Let it run again from where it stood; idempotent."""
        with self._lock:
            if self._mark is None:
                self._mark = self._source()

    def state(self) -> dict[str, Any]:
        """What a snapshot keeps: the scaled time run so far, the scale and the epoch."""
        return {"elapsed": self.monotonic(), "scale": self.scale, "epoch": self._epoch}

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from a snapshot's :meth:`state` (paused or running as now), with the
        snapshot's scale and epoch: a resumed run keeps the time it had."""
        with self._lock:
            self._elapsed = float(state["elapsed"])
            self.scale = float(state["scale"])
            self._epoch = float(state["epoch"])
            if self._mark is not None:
                self._mark = self._source()


_clock = ScaledClock()


def clock() -> ScaledClock:
    """This process's clock."""
    return _clock


def set_clock(new: ScaledClock) -> ScaledClock:
    """Make ``new`` this process's clock; returns the one it replaces."""
    global _clock
    old, _clock = _clock, new
    return old


def monotonic() -> float:
    """Scaled, pause-free seconds from this process's clock (see :class:`ScaledClock`)."""
    return _clock.monotonic()


def time() -> float:
    """Seconds since 1970 on this process's clock."""
    return _clock.time()


def sleep(seconds: float) -> None:
    """Sleep ``seconds`` of this process's (scaled) time."""
    _clock.sleep(seconds)
