"""The store's side of snapshots and resume (issue 12, item 5): where a run's rows stood
when a snapshot was taken (:func:`marks`), and putting the store back there before the
run goes on from that snapshot (:func:`rewind`), so that each step is stored once.

A run has one writer, and rows get ids in the order they are inserted (a PostgreSQL
sequence never goes back; SQLite gives a new row one more than the largest id in the
table, and the run's own row at its mark stays), so "the rows of the run with an id up
to the mark" are exactly the rows it had committed when the marks were taken, and every
row it inserts later has a larger id. The marks are taken right after the writer has
committed everything sent to it while every worker is paused: nothing of the run is in
flight then.

The marks are plain JSON (:class:`Marks`): the lead writes them into the snapshot's
manifest, and :func:`rewind` checks what it is given back, since a manifest is a file
that may have been edited.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import Connection, Engine, Select, and_, delete, exists, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from arl.errors import ArlError
from arl.store.query import process_alive, this_process
from arl.store.schema import (
    UNFINISHED_STATUSES,
    AgentActionRow,
    Base,
    CheckpointRow,
    EnvironmentStepRow,
    EpisodeRow,
    EventRow,
    MetricRow,
    PhaseRow,
    RunRow,
    RunStatus,
)

TABLES = ("phases", "episodes", "environment_steps", "agent_actions", "metrics", "brain_checkpoints", "events")
"""The tables a run's marks cover: every table of a run's rows but ``experiment_runs``."""

REWOUND = ("environment_steps", "agent_actions", "metrics", "brain_checkpoints", "episodes", "phases")
"""The tables :func:`rewind` deletes from, children before their parents. ``events`` is
not among them: a resumed run keeps its history (the crash, the stop, the resume)."""

FIRST_WINDOW = 4096
"""Ids looked through at first, down from the top of a table, for a run's last row."""

IN_CHUNK = 500
"""Ids in one ``IN (...)`` list (SQLite allows far more; this keeps statements small)."""


class Marks(TypedDict):
    """Where a run's rows stood: for each table of :data:`TABLES`, the largest id of the
    run's rows (0 where it has none), and the phases and episodes open then."""

    run_id: int
    phases: int
    episodes: int
    environment_steps: int
    agent_actions: int
    metrics: int
    brain_checkpoints: int
    events: int
    open_phases: list[int]
    open_episodes: list[int]


# -- which rows are the run's ---------------------------------------------------------------


def _run_phases(run_id: int) -> Select[int]:
    return select(PhaseRow.id).where(PhaseRow.run_id == run_id)


def _run_episodes(run_id: int) -> Select[int]:
    return select(EpisodeRow.id).where(EpisodeRow.phase_id.in_(_run_phases(run_id)))


def _of_run(table: str, run_id: int) -> tuple[Any, ColumnElement[bool]]:
    """The row class of ``table`` and the condition that keeps it to run ``run_id``'s rows:
    steps and actions name their episode, episodes their phase, the rest the run."""
    row: Any
    if table in ("environment_steps", "agent_actions"):
        row = EnvironmentStepRow if table == "environment_steps" else AgentActionRow
        return row, row.episode_id.in_(_run_episodes(run_id))
    if table == "episodes":
        return EpisodeRow, EpisodeRow.phase_id.in_(_run_phases(run_id))
    by_run: dict[str, type[Base]] = {
        "phases": PhaseRow,
        "metrics": MetricRow,
        "brain_checkpoints": CheckpointRow,
        "events": EventRow,
    }
    row = by_run[table]
    return row, row.run_id == run_id


# -- marks ------------------------------------------------------------------------------------


def marks(conn_or_engine: Connection | Engine, run_id: int) -> Marks:
    """Where run ``run_id``'s rows stand now (:class:`Marks`). Take them right after the
    run's writer has committed everything (``StoreWriter.flush``) while every worker is
    paused, and keep them with the snapshot (its manifest's ``store``).

    Cost: a few indexed lookups a table. A run's last row is looked for down from the top
    of the table, in windows of ids growing eightfold (:func:`_last_id`), so it is found
    among the rows written since it (other runs' in the same store), not among all the
    run's rows; the open episodes are read from the open phases' episodes.
    """
    with _connection(conn_or_engine) as conn:
        ids = {table: _last_id(conn, table, run_id) for table in TABLES}
        open_phases = conn.execute(
            select(PhaseRow.id).where(PhaseRow.run_id == run_id, PhaseRow.ended_at.is_(None)).order_by(PhaseRow.id)
        ).scalars()
        open_phase_ids = [int(i) for i in open_phases]
        open_episodes: list[int] = []
        if open_phase_ids:
            query = select(EpisodeRow.id).where(EpisodeRow.phase_id.in_(open_phase_ids), EpisodeRow.ended_at.is_(None))
            open_episodes = [int(i) for i in conn.execute(query.order_by(EpisodeRow.id)).scalars()]
    return _as_marks({"run_id": run_id, **ids, "open_phases": open_phase_ids, "open_episodes": open_episodes})


def _last_id(conn: Connection, table: str, run_id: int) -> int:
    """The largest id of run ``run_id``'s rows in ``table``, 0 when it has none.

    ``max(id)`` over the run's rows would read every one of them on PostgreSQL (its index
    on ``episode_id`` or ``run_id`` is not ordered by id): a long run's billions of steps
    at each snapshot. The primary key is ordered, so this looks down from the top of the
    table through windows of ids, each a range of the key, the first FIRST_WINDOW ids,
    then eight times as many each time, until one holds a row of the run. Whether it
    has any is asked first (an indexed lookup), so a run with none (``--no-store-steps``)
    costs no walk down the whole table.
    """
    row, of_run = _of_run(table, run_id)
    id_column = row.id
    if not conn.execute(select(exists().where(of_run))).scalar():
        return 0
    top = conn.execute(select(func.max(id_column))).scalar()
    high, size = int(top or 0), FIRST_WINDOW
    while high > 0:
        low = max(high - size, 0)
        found = conn.execute(select(func.max(id_column)).where(id_column > low, id_column <= high, of_run)).scalar()
        if found is not None:
            return int(found)
        high, size = low, size * 8
    return 0  # its rows went while we looked (not while its writer is flushed and paused)


# -- rewind -----------------------------------------------------------------------------------


def rewind(
    engine: Engine,
    run_id: int,
    marked: Mapping[str, Any],
    *,
    process: tuple[int, datetime] | None = None,
) -> dict[str, int]:
    """Put run ``run_id``'s rows back as they were at ``marked`` (a snapshot's
    :class:`Marks`, as :func:`marks` gave them or read back from its manifest), in one
    transaction, before the run goes on from that snapshot:

    * its rows with an id above the mark are deleted from :data:`REWOUND`, children
      first; its events are all kept (the caller adds one saying it resumed);
    * the phases and episodes open at the marks that were closed since (by the writer's
      ``RunEnded``, a ``WorkerLost``, or from outside: ``query.end_run_at``,
      ``interrupt_dead_runs``) are open again: ``ended_at``, ``end_reason`` and (an
      episode's) ``steps`` NULL, as the writer inserts them;
    * the run is ``RUNNING`` again, its ``ended_at``, ``end_reason`` and ``error`` cleared,
      and its writer's process is ``process`` of this host (pid, start time; by default
      the calling process): a later opening of the store judges the run alive or dead
      by it, so call this in the process that will write the run, or name that one.

    Returns the rows deleted per table of :data:`REWOUND`, and ``reopened_phases`` and
    ``reopened_episodes``. Raises :class:`ArlError` (nothing changed) when the marks are
    not a run's marks, are another run's, the run is not in the store, its process still
    runs (on this host), it is unfinished on another host (which alone can tell whether
    it still runs), or the store lacks rows the marks counted (it is older than the
    snapshot: restored from a backup, say).
    """
    checked = checked_marks(marked, run_id)
    writer = process or this_process()
    with _write_transaction(engine) as conn:
        _refuse_live_run(conn, run_id, writer)
        _refuse_missing_rows(conn, run_id, checked)
        counts: dict[str, int] = {}
        for table in REWOUND:
            row, of_run = _of_run(table, run_id)
            counts[table] = _rowcount(conn.execute(delete(row).where(row.id > _mark(checked, table), of_run)))
        for table in ("phases", "episodes"):
            row, of_run = _of_run(table, run_id)
            counts[f"reopened_{table}"] = _reopen(conn, row, _open(checked, table), of_run)
        conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(
                status=RunStatus.RUNNING.value,
                ended_at=None,
                end_reason=None,
                error=None,
                host=socket.gethostname(),
                pid=writer[0],
                pid_started_at=writer[1],
            )
        )
    return counts


def checked_marks(marked: Mapping[str, Any], run_id: int) -> Marks:
    """``marked`` as :class:`Marks` of run ``run_id``; :class:`ArlError` saying what is wrong
    otherwise (a snapshot's manifest is a file, and may have been edited)."""
    if not isinstance(marked, Mapping):
        raise ArlError(f"the snapshot's store marks are not a table of ids but {type(marked).__name__}")
    wanted = ("run_id", *TABLES, "open_phases", "open_episodes")
    missing = [key for key in wanted if key not in marked]
    if missing:
        raise ArlError(f"the snapshot's store marks lack {', '.join(missing)}: it was not written by this arl")
    for key in ("run_id", *TABLES):
        if not _is_id(marked[key]):
            raise ArlError(f"the snapshot's store mark {key} is {marked[key]!r}, not an id (a whole number, 0 or more)")
    for key in ("open_phases", "open_episodes"):
        value = marked[key]
        if not isinstance(value, list) or not all(_is_id(i) and i > 0 for i in value):
            raise ArlError(f"the snapshot's store mark {key} is {value!r:.200}, not a list of ids")
    if marked["run_id"] != run_id:
        raise ArlError(f"the snapshot's store marks are of run id {marked['run_id']}, not of run id {run_id}")
    return _as_marks(marked)


def _as_marks(values: Mapping[str, Any]) -> Marks:
    return Marks(
        run_id=values["run_id"],
        phases=values["phases"],
        episodes=values["episodes"],
        environment_steps=values["environment_steps"],
        agent_actions=values["agent_actions"],
        metrics=values["metrics"],
        brain_checkpoints=values["brain_checkpoints"],
        events=values["events"],
        open_phases=list(values["open_phases"]),
        open_episodes=list(values["open_episodes"]),
    )


def _is_id(value: Any) -> bool:
    return type(value) is int and value >= 0


def _mark(checked: Marks, table: str) -> int:
    """The mark of ``table`` (one of :data:`TABLES`)."""
    value: int = cast(Mapping[str, Any], checked)[table]
    return value


def _open(checked: Marks, table: str) -> list[int]:
    """The ids of ``table``'s rows (phases or episodes) open at the marks."""
    value: list[int] = cast(Mapping[str, Any], checked)[f"open_{table}"]
    return value


@contextlib.contextmanager
def _connection(conn_or_engine: Connection | Engine) -> Iterator[Connection]:
    if isinstance(conn_or_engine, Connection):
        yield conn_or_engine
        return
    with conn_or_engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def _write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that is committed when the block ends, rolled back when it raises.
    On SQLite it takes the write lock first (``BEGIN IMMEDIATE``, waiting out the busy
    timeout), so that its reads and its writes see one state of the file: a transaction
    that read first could not take the lock once another writer had committed."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _refuse_live_run(conn: Connection, run_id: int, writer: tuple[int, datetime]) -> None:
    """Refuse to rewind a run another process may still be writing."""
    found = conn.execute(
        select(RunRow.uid, RunRow.status, RunRow.host, RunRow.pid, RunRow.pid_started_at).where(RunRow.id == run_id)
    ).one_or_none()
    if found is None:
        raise ArlError(f"run id {run_id} is not in the store: the snapshot is of a run of another store")
    uid, status, host, pid, started_at = found
    if status not in {str(s) for s in UNFINISHED_STATUSES} or pid is None:
        return
    if host == socket.gethostname():
        if pid != writer[0] and process_alive(pid, started_at):  # the writer itself: rewound twice
            raise ArlError(
                f"run {uid} (id {run_id}) is still running (pid {pid}): stop it before resuming it from a snapshot"
            )
        return
    raise ArlError(
        f"run {uid} (id {run_id}) is {status} on host {host}, and only there can arl tell whether it still runs: "
        f"resume it on {host}"
    )


def _refuse_missing_rows(conn: Connection, run_id: int, checked: Marks) -> None:
    """Refuse marks the store is behind: the run's row at each mark, and each open phase
    and episode, must be there. A store older than the snapshot (restored from a backup)
    would otherwise go on with a hole in the run."""
    for table in TABLES:
        mark = _mark(checked, table)
        if mark == 0:
            continue
        row, of_run = _of_run(table, run_id)
        if not conn.execute(select(exists().where(row.id == mark, of_run))).scalar():
            raise ArlError(
                f"the store lacks the run's row {mark} of {table}, which the snapshot saw: the store is older "
                "than the snapshot (restored from a backup?). Resume from a snapshot the store has all rows of."
            )
    for table in ("phases", "episodes"):
        row, of_run = _of_run(table, run_id)
        wanted = _open(checked, table)
        there = sum(
            conn.execute(select(func.count()).select_from(row).where(row.id.in_(chunk), of_run)).scalar() or 0
            for chunk in _chunks(wanted)
        )
        if there != len(set(wanted)):
            raise ArlError(
                f"the store lacks {len(set(wanted)) - there} of the run's {table} the snapshot saw open: the store is "
                "older than the snapshot (restored from a backup?). Resume from a snapshot the store has all rows of."
            )


def _reopen(conn: Connection, row: Any, ids: list[int], of_run: ColumnElement[bool]) -> int:
    """Open again the rows ``ids`` of ``row``'s table that were closed; how many were."""
    values: dict[str, None] = {"ended_at": None, "end_reason": None}
    if row is EpisodeRow:
        values["steps"] = None
    reopened = 0
    for chunk in _chunks(ids):
        statement = update(row).where(and_(row.id.in_(chunk), of_run, row.ended_at.is_not(None))).values(values)
        reopened += _rowcount(conn.execute(statement))
    return reopened


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


# -- a writer going on with a rewound run ------------------------------------------------------


def run_keys(conn: Connection, run_id: int) -> tuple[dict[int, int], dict[tuple[int, int, int], int]]:
    """What a writer that goes on with run ``run_id`` (rewound) needs to map records to
    rows, as its ``Recorder`` keeps them: every phase's id by its index, and every open
    episode's id by (phase index, worker, episode index). Closed episodes get no more
    records, so they are left out."""
    phases = {int(index): int(row_id) for index, row_id in conn.execute(
        select(PhaseRow.index, PhaseRow.id).where(PhaseRow.run_id == run_id)
    )}  # fmt: skip
    query = (
        select(PhaseRow.index, EpisodeRow.worker, EpisodeRow.index, EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id, PhaseRow.ended_at.is_(None), EpisodeRow.ended_at.is_(None))
    )
    episodes = {(int(p), int(w), int(e)): int(i) for p, w, e, i in conn.execute(query)}
    return phases, episodes
