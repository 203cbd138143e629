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


def end_run(engine: Engine, run_id: int, status: str, error: str | None) -> bool:
    """End run ``run_id`` as ``status`` if it is still unfinished, and close its open
    phases and episodes with that status as their end reason.

    For a run whose process died without writing its end. Returns False when the run
    had ended after all (its own writer got there first) or does not exist.
    """
    status = RunStatus(status)
    now = datetime.now(UTC)
    reason = str(status).lower()
    unfinished = RunRow.status.in_([str(s) for s in UNFINISHED_STATUSES])
    with engine.begin() as conn:
        done = conn.execute(
            update(RunRow).where(RunRow.id == run_id, unfinished).values(status=str(status), error=error, ended_at=now)
        )
        if done.rowcount != 1:
            return False
        phases = select(PhaseRow.id).where(PhaseRow.run_id == run_id)
        conn.execute(
            update(EpisodeRow)
            .where(EpisodeRow.phase_id.in_(phases), EpisodeRow.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )
        conn.execute(
            update(PhaseRow)
            .where(PhaseRow.run_id == run_id, PhaseRow.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )
        return True


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
