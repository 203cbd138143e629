"""Questions the rest of arl asks of a store, outside the writer, and the ending of runs
their own writer could not end (its process died, or the writer failed)."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import psutil
from sqlalchemy import Connection, Engine, Label, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from arl.checkpoints import Saved
from arl.errors import ArlError
from arl.store.engine import describe_location, open_store, short_error
from arl.store.location import PATIENCE
from arl.store.schema import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    AgentActionRow,
    CheckpointRow,
    EnvironmentStepRow,
    EpisodeRow,
    EventRow,
    PhaseRow,
    RunRow,
    RunStatus,
    utc,
)

log = logging.getLogger("arl.store")

PID_TIME_TOLERANCE = 1.0
"""Seconds two readings of one process's start time may differ by (psutil derives it from
the boot time, which the kernel reports in whole seconds)."""


def run_count_columns() -> list[Label[int]]:
    """Scalar subqueries counting a run's phases, episodes, environment steps, agent
    actions and checkpoints, labelled so and correlated to :attr:`RunRow.id`: columns to
    select beside a run's own."""
    count = select(func.count())
    of_run = PhaseRow.run_id == RunRow.id
    counted = {
        "phases": count.select_from(PhaseRow).where(of_run),
        "episodes": count.select_from(EpisodeRow).join(PhaseRow).where(of_run),
        "environment_steps": count.select_from(EnvironmentStepRow).join(EpisodeRow).join(PhaseRow).where(of_run),
        "agent_actions": count.select_from(AgentActionRow).join(EpisodeRow).join(PhaseRow).where(of_run),
        "checkpoints": count.select_from(CheckpointRow).where(CheckpointRow.run_id == RunRow.id),
    }
    return [query.correlate(RunRow).scalar_subquery().label(name) for name, query in counted.items()]


def run_counts(engine: Engine, run_id: int) -> dict[str, int]:
    """How many rows of each kind a run has stored (:func:`run_count_columns`); all zero
    for a run that does not exist."""
    columns = run_count_columns()
    with engine.connect() as conn:
        row = conn.execute(select(*columns).where(RunRow.id == run_id)).one_or_none()
    return dict(row._mapping) if row is not None else {column.name: 0 for column in columns}


def end_run(
    engine: Engine,
    run_id: int,
    status: str,
    error: str | None,
    reason: str | None = None,
    *,
    ended_at: datetime | None = None,
) -> bool:
    """End run ``run_id`` as ``status`` if it is still unfinished, and close its open
    phases and episodes (:func:`close_open_rows`). Their end reason is the status in lower
    case ("failed"), and so is the run's unless ``reason`` is given. They end at
    ``ended_at``, by default now: right for a death noticed as it happened.

    For a run whose own writer could not end it: its process died, or its writer failed.
    Returns False when the run had ended after all (its own writer got there first) or
    does not exist.
    """
    status = RunStatus(status)
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"a run ends FINISHED, FAILED or INTERRUPTED, not {status}")
    now = datetime.now(UTC)
    ended_at = ended_at or now
    closed = str(status).lower()
    unfinished = RunRow.status.in_([str(s) for s in UNFINISHED_STATUSES])
    with engine.begin() as conn:
        done = conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id, unfinished)
            .values(status=str(status), error=error, ended_at=ended_at, end_reason=reason or closed)
        )
        if done.rowcount != 1:
            return False
        close_open_rows(conn, run_id, ended_at, closed)
        detail = {"status": str(status), "reason": reason or closed, "error": error}
        # The event is when the run was ended from outside, which may be long after it died.
        conn.execute(insert(EventRow).values(run_id=run_id, at=now, kind="ended_from_outside", detail=detail))
        return True


def end_run_at(
    url: str,
    run_id: int,
    status: str,
    error: str | None,
    reason: str | None = None,
    *,
    patience: float = PATIENCE,
) -> dict[str, int] | None:
    """:func:`end_run` on the store at ``url``, for a process that has no engine on it;
    returns what the run has stored (:func:`run_counts`), or None when the store could not
    be reached. A busy store is waited for up to ``patience`` seconds.

    A store that is not there (its file deleted) is not made anew for this. A failure is
    logged to ``arl.store``, not raised: the caller is reporting how the run ended anyway,
    and a broken store must not stop that.
    """
    try:
        engine = open_store(url, create=False, patience=patience)
        try:
            end_run(engine, run_id, status, error, reason)
            return run_counts(engine, run_id)
        finally:
            engine.dispose()
    except (ArlError, SQLAlchemyError) as exc:
        log.error(
            "store: could not record the end of run id %d in %s: %s", run_id, describe_location(url), short_error(exc)
        )
        return None


def close_open_rows(conn: Connection, run_id: int, ended_at: datetime, reason: str) -> None:
    """End the run's episodes, then its phases, that are still open, at ``ended_at`` for
    ``reason``: a process killed mid-episode never ended its episode. An episode's
    ``steps`` become the last step it has stored (NULL when it stored none)."""
    phases = select(PhaseRow.id).where(PhaseRow.run_id == run_id)
    last_step = (
        select(func.max(EnvironmentStepRow.step))
        .where(EnvironmentStepRow.episode_id == EpisodeRow.id)
        .correlate(EpisodeRow)
        .scalar_subquery()
    )
    conn.execute(
        update(EpisodeRow)
        .where(EpisodeRow.phase_id.in_(phases), EpisodeRow.ended_at.is_(None))
        .values(ended_at=ended_at, end_reason=reason, steps=last_step)
    )
    conn.execute(
        update(PhaseRow)
        .where(PhaseRow.run_id == run_id, PhaseRow.ended_at.is_(None))
        .values(ended_at=ended_at, end_reason=reason)
    )


def this_process() -> tuple[int, datetime]:
    """The pid and start time of this process, as a run row records its writer's."""
    me = psutil.Process()
    return me.pid, utc(me.create_time())


def process_alive(pid: int, started_at: datetime | None) -> bool:
    """Whether process ``pid`` of this host, started at ``started_at``, still exists.

    A pid now held by a process started at another time was reused: the one recorded is
    gone. A zombie has exited, so it is gone too (an orphan may stay a zombie for good
    where PID 1 does not reap, as in a container without an init). Without a start time
    a live pid is taken at its word.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; whose it is cannot be told
    return started_at is None or abs(created - started_at.timestamp()) <= PID_TIME_TOLERANCE


def interrupt_dead_runs(engine: Engine) -> list[int]:
    """End as INTERRUPTED every unfinished run of this host whose writer's process is
    gone (killed with SIGKILL, or the machine lost power), closing its open phases and
    episodes; returns their ids.

    Runs of other hosts, and runs that recorded no pid, cannot be judged and are left
    alone. Two processes doing this at once end each run once (see :func:`end_run`).
    """
    host = socket.gethostname()
    query = select(RunRow.id, RunRow.uid, RunRow.pid, RunRow.pid_started_at).where(
        RunRow.status.in_([str(s) for s in UNFINISHED_STATUSES]), RunRow.host == host, RunRow.pid.is_not(None)
    )
    with engine.connect() as conn:
        candidates = conn.execute(query).all()
    ended = []
    for run_id, uid, pid, started_at in candidates:
        if pid is None or process_alive(pid, started_at):
            continue
        error = f"its process (pid {pid} on {host}) died without ending the run; found when the store was next opened"
        last = last_sign_of_life(engine, run_id)
        if end_run(engine, run_id, RunStatus.INTERRUPTED, error, reason="process died", ended_at=last):
            log.warning(
                "store: run %s (id %d) was left unfinished by pid %d, now gone: marked INTERRUPTED", uid, run_id, pid
            )
            ended.append(run_id)
    return ended


def last_sign_of_life(engine: Engine, run_id: int) -> datetime | None:
    """The latest time a run stored: its start, a phase's or an episode's start or end, an
    event, a saved brain. A run found dead long after it died ends then, not when it was
    found (its steps carry no time, so its last episode's end may be early by as much as
    that episode lasted)."""
    of_run = PhaseRow.run_id == run_id
    queries = [
        select(RunRow.started_at).where(RunRow.id == run_id),
        select(func.max(PhaseRow.started_at)).where(of_run),
        select(func.max(PhaseRow.ended_at)).where(of_run),
        select(func.max(EpisodeRow.started_at)).join(PhaseRow).where(of_run),
        select(func.max(EpisodeRow.ended_at)).join(PhaseRow).where(of_run),
        select(func.max(EventRow.at)).where(EventRow.run_id == run_id),
        select(func.max(CheckpointRow.saved_at)).where(CheckpointRow.run_id == run_id),
    ]
    with engine.connect() as conn:
        times = [conn.execute(query).scalar() for query in queries]
    return max((t for t in times if t is not None), default=None)


def find_checkpoint(url: str, run: str, phase: str | None, agent: str) -> Saved | None:
    """The folder and recorded sha256 of the brain ``agent`` saved in phase ``phase`` (by
    name) of the newest run ``run`` (a uid, or a database id) that saved one; with no
    phase, its last one.

    For ``load: {run: ..., phase: ..., agent: ...}`` in an experiment file; the agent
    checks the sha256 before loading. None when the store has no such brain.
    """
    query = (
        select(CheckpointRow.path, CheckpointRow.sha256)
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
            row = conn.execute(query.where(by_run)).one_or_none()
    finally:
        engine.dispose()
    return None if row is None else Saved(row.path, row.sha256)
