"""Questions the rest of arl asks of a store, outside the writer."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, update

from arl.store.engine import open_store
from arl.store.schema import (
    UNFINISHED_STATUSES,
    AgentActionRow,
    CheckpointRow,
    EnvironmentStepRow,
    EpisodeRow,
    PhaseRow,
    RunRow,
    RunStatus,
)


def run_counts(engine: Engine, run_id: int) -> dict[str, int]:
    """How many rows of each kind a run has stored."""
    episodes = select(EpisodeRow.id).join(PhaseRow).where(PhaseRow.run_id == run_id)
    count = select(func.count())
    queries = {
        "phases": count.select_from(PhaseRow).where(PhaseRow.run_id == run_id),
        "episodes": count.select_from(EpisodeRow).join(PhaseRow).where(PhaseRow.run_id == run_id),
        "environment_steps": count.select_from(EnvironmentStepRow).where(EnvironmentStepRow.episode_id.in_(episodes)),
        "agent_actions": count.select_from(AgentActionRow).where(AgentActionRow.episode_id.in_(episodes)),
        "checkpoints": count.select_from(CheckpointRow).where(CheckpointRow.run_id == run_id),
    }
    with engine.connect() as conn:
        return {name: conn.execute(query).scalar_one() for name, query in queries.items()}


def mark_unfinished(engine: Engine, uid: str, status: str, error: str) -> int | None:
    """End the newest SCHEDULED or RUNNING run with this uid as ``status`` with ``error``.

    For a run whose process died without reporting: its own writer never wrote the end.
    Returns the run's id, or None when no such run is unfinished (it may have ended after
    all, or never started).
    """
    status = RunStatus(status)
    unfinished = RunRow.status.in_([str(s) for s in UNFINISHED_STATUSES])
    with engine.begin() as conn:
        run_id = conn.execute(
            select(RunRow.id).where(RunRow.uid == uid, unfinished).order_by(RunRow.id.desc()).limit(1)
        ).scalar_one_or_none()
        if run_id is None:
            return None
        # The status guard again: the run's own writer may have ended it meanwhile.
        done = conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id, unfinished)
            .values(status=str(status), error=error, ended_at=datetime.now(UTC))
        )
        return run_id if done.rowcount == 1 else None


def find_checkpoint(url: str, run: str, phase: str | None, agent: str) -> str | None:
    """The directory of the brain ``agent`` saved in phase ``phase`` (by name) of the newest
    run ``run`` (a uid, or a database id) that saved one; with no phase, its last one.

    For ``load: {run: ..., phase: ..., agent: ...}`` in an experiment file. None when the
    store has no such brain.
    """
    query = (
        select(CheckpointRow.path)
        .join(PhaseRow, CheckpointRow.phase_id == PhaseRow.id)
        .join(RunRow, CheckpointRow.run_id == RunRow.id)
        .where(CheckpointRow.agent == agent)
        .order_by(RunRow.id.desc(), PhaseRow.index.desc(), CheckpointRow.id.desc())
        .limit(1)
    )
    if phase is not None:
        query = query.where(PhaseRow.name == phase)
    by_run = RunRow.uid == run
    if run.isdigit():
        by_run = by_run | (RunRow.id == int(run))
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query.where(by_run)).scalar_one_or_none()
    finally:
        engine.dispose()
