"""Executor <-> RunGovernor, over the executor's control socket."""

from __future__ import annotations

from arl.codec import message


@message("exec.status")
class GovernorStatus:
    run_uid: str
    state: str  # a RunState name


@message("exec.stop")
class StopRun:
    """Stop the run at the next step boundary."""

    reason: str  # "interrupted"


@message("exec.outcome")
class RunOutcome:
    run_uid: str
    run_id: int | None
    status: str  # "FINISHED" | "FAILED" | "INTERRUPTED"
    phases: int
    episodes: int
    steps: int
    error: str | None
    store_url: str
