"""What a RunGovernor is started with. Kept light: the executor imports it."""

from __future__ import annotations

from dataclasses import dataclass

from arl.proc.logs import LogConfig


@dataclass(frozen=True)
class Timeouts:
    start: float = 30.0  # a child must be ready within this
    request: float = 60.0  # a control request (setup, save) must be answered within this
    phase: float = 1e9  # a worker's whole phase; liveness is watched through process exits
    stop_grace: float = 5.0


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


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
