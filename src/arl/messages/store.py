"""Records for the StoreWriter. Phases, episodes and steps are named by natural keys
(phase index, worker, episode index, step); the writer owns the database ids."""

from __future__ import annotations

from typing import Any

from arl.codec import message


@message("store.run_started")
class RunStarted:
    uid: str
    experiment_uid: str | None
    seed: int
    document: dict[str, Any]
    arl_version: str
    host: str
    started_at: float
    swept: dict[str, Any] | None = None  # a --sweep's values (RunSpec.swept); None: no sweep


@message("store.run_resumed")
class RunResumed:
    """The run goes on from a snapshot: its row ``run_id`` (rewound to the snapshot by
    :func:`arl.store.marks.rewind`) takes the records, its phases and open episodes too."""

    run_id: int


@message("store.phase_started")
class PhaseStarted:
    index: int
    name: str
    mode: str
    started_at: float


@message("store.episode_started")
class EpisodeStarted:
    phase: int
    worker: int
    episode: int
    started_at: float


@message("store.env_step")
class EnvironmentStep:
    phase: int
    worker: int
    episode: int
    step: int
    env_uid: str
    sensors: dict[str, Any] | str  # a dict, or its JSON text (arl.store.jsontext.to_json_text)
    rewards: dict[str, float] | str
    terminated: bool
    truncated: bool
    sim_time: float | None = None  # arl.time.time() at the step; last, so older senders' frames decode
    info: str | None = None  # the environment's info, JSON text (arl.stepinfo); after sim_time, as it came later


@message("store.agent_action")
class AgentAction:
    phase: int
    worker: int
    episode: int
    step: int
    agent: str
    inputs: dict[str, Any] | str  # each a dict, or its JSON text
    setpoints: dict[str, Any] | str
    rewards: dict[str, float] | str
    objective: float
    policy_version: int | None = None  # of the policy that chose the setpoints, if the muscle said


@message("store.episode_ended")
class EpisodeEnded:
    phase: int
    worker: int
    episode: int
    steps: int
    reason: str  # "terminated" | "truncated" | "max_steps" | "interrupted" | "failed"
    ended_at: float


@message("store.worker_lost")
class WorkerLost:
    """Worker ``worker``'s processes died in phase ``phase`` and are restarted: end every
    episode of that worker the store holds without an end, for ``reason`` (its ``steps``
    the last step it stored). Sent by the governor after the dead processes' records."""

    phase: int
    worker: int
    reason: str
    ended_at: float


@message("store.phase_ended")
class PhaseEnded:
    index: int
    reason: str
    ended_at: float


@message("store.checkpoint")
class CheckpointSaved:
    phase: int
    agent: str
    path: str
    sha256: str
    saved_at: float


@message("store.event")
class Event:
    """Something noteworthy in the run that is not a step: a saved brain, a failure, a
    stop request, a run-level condition that fired. ``detail`` is plain JSON-able data."""

    kind: str
    detail: dict[str, Any]
    at: float


@message("store.metrics")
class Metrics:
    """Values agent ``agent``'s brain and muscles logged (``log_metric``) in phase
    ``phase``: each ``[worker (None: the brain), name, step, value, time logged]``. An
    agent process sends them in batches, not a record a value."""

    phase: int
    agent: str
    values: list[list[Any]]


@message("store.run_ended")
class RunEnded:
    status: str  # "FINISHED" | "FAILED" | "INTERRUPTED"
    error: str | None
    ended_at: float
    reason: str | None = None  # why: "completed", a run-level condition's reason, "failed", ...


@message("store.flush")
class Flush:
    """Commit everything received so far; the writer answers on its reply socket."""

    token: int
