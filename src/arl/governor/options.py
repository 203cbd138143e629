"""What a RunGovernor is started with. Kept light: the executor imports it."""

from __future__ import annotations

import dataclasses
import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arl.proc.logs import LogConfig
from arl.store.location import PATIENCE

TIMEOUTS_ENV_VAR = "ARL_TIMEOUTS"
"""``start=60,store=120``: seconds that replace :class:`Timeouts`' defaults, for a slow
machine or store (and for tests, which shorten them)."""


@dataclass(frozen=True)
class Timeouts:
    # Measured as the child's own time: what it spent waiting for a CPU is not counted
    # (SupervisedChild.start), so a loaded machine slows a start down without failing it.
    start: float = 30.0  # a child must be ready within this
    request: float = 60.0  # a control request (setup, save) must be answered within this
    phase: float = 1e9  # a worker's whole phase; liveness is watched through process exits
    stop_grace: float = 5.0
    reply_grace: float = 1.0  # after a stop, a peer's answer is still awaited this long (and stored)
    liveness: float = 60.0  # heartbeats (1 a second) missed before the broker and a worker give each other up
    store: float = PATIENCE  # a busy (locked) store is waited for this long, in all, before the run fails

    @property
    def governor_start(self) -> float:
        """How long a governor may take to say ready: a child's start, plus the store's
        patience, as it opens the store (which may be busy) before it is ready."""
        return self.start + self.store + 30.0


@dataclass(frozen=True)
class RunOptions:
    store_url: str
    checkpoint_dir: str  # absolute
    logs: LogConfig
    control: str | None = None  # the executor's control endpoint
    rundir: str | None = None  # a private directory for ipc endpoints; made (and removed) here if None
    control_id: str = "governor"  # this governor's identity on it
    timeouts: Timeouts = Timeouts()
    store_steps: bool = True  # False: controllers send no environment steps or agent actions
    resume: str | None = None  # a snapshot of this run to go on from (docs/state.md)


def timeouts_from(environ: Mapping[str, str]) -> Timeouts:
    """:class:`Timeouts` with those named in ``$ARL_TIMEOUTS`` replaced.

    Raises ValueError saying what is wrong and what is allowed."""
    text = environ.get(TIMEOUTS_ENV_VAR, "").strip()
    names = [f.name for f in dataclasses.fields(Timeouts)]
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if name.strip() not in names or not (0 < seconds < math.inf):
            raise ValueError(
                f"${TIMEOUTS_ENV_VAR}: cannot use {item!r}: write NAME=SECONDS, separated by commas, "
                f"with NAME one of {', '.join(names)} and SECONDS a number above 0"
            )
        values[name.strip()] = seconds
    return Timeouts(**values)


def describe_exit(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is not None and code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"was killed by signal {-code}{name}"
    return f"exited with code {code}"


def last_lines(lines: Sequence[str]) -> str:
    """A dead process's last log lines, indented under the line that says it died."""
    return "\n".join(f"  {line}" for line in lines) if lines else "  (none)"
