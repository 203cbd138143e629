"""RunGovernor -> Executor, over the executor's control socket. (The executor asks a
governor to stop through its supervised-child pipe, which buffers the word even
before the governor has connected this socket.)"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from arl.codec import message


@message("exec.status")
class GovernorStatus:
    run_uid: str
    state: str  # a RunState name
    run_id: int | None  # the run's row in the store, once it has one


@message("exec.outcome")
class RunOutcome:
    run_uid: str
    run_id: int | None
    status: str  # "FINISHED" | "FAILED" | "INTERRUPTED"
    phases: int  # as stored: phases started, episodes started, environment steps, actions
    episodes: int
    steps: int
    actions: int
    error: str | None
    reason: str | None = None  # why the run ended: "completed", a run-level condition's reason, ...
    # Its ended phases, as a status's ``history`` says them (arl.governor.control): the
    # progress display says those no status it saw did (the last phase's end, often).
    history: list[dict[str, Any]] = field(default_factory=list)


@message("exec.control_request")
class ControlRequest:
    """Executor -> governor: a request about the live run (``arl.governor.control.WORDS``)."""

    id: int
    word: str
    detail: dict[str, Any]


@message("exec.control_reply")
class ControlReply:
    """Governor -> executor: the answer to :class:`ControlRequest` ``id``."""

    id: int
    ok: bool
    result: dict[str, Any]
    error: str | None
