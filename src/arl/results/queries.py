"""The read side of the store: what a run stored, as plain Python values (no pandas).

Every query starts from one run and walks down its indexed parent columns (run ->
phases -> episodes -> steps and actions), in portable SQL that SQLite and PostgreSQL
both run; JSON columns come back as dicts on both. The big tables are read in chunks
(:func:`flat_chunks`) so that memory stays bounded however long the run was.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import operator
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Engine, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from arl.errors import ArlError
from arl.status import STORED_STATUSES
from arl.store.engine import StoreNotFound as StoreNotFound
from arl.store.engine import describe_location, open_store, short_error
from arl.store.location import store_url
from arl.store.query import interrupt_dead_runs, run_count_columns
from arl.store.schema import (
    AgentActionRow,
    EnvironmentStepRow,
    EpisodeRow,
    EventRow,
    MetricRow,
    PhaseRow,
    RunRow,
    RunStatus,
)

if TYPE_CHECKING:
    from sqlalchemy import Select

    Query = Select[*tuple[Any, ...]]

Store = str | os.PathLike[str] | Engine | None
"""A store to read: a SQLAlchemy URL, a :class:`pathlib.Path` to a SQLite file, an open
engine (left open), or None for ``$ARL_STORE_URL``, else ``sqlite:///arl.db``. A ``str``
is always a URL."""

Record = dict[str, Any]
PhaseKey = int | str | None
"""A phase by index or by name; None for every phase."""

CHUNK_ROWS = 5_000
"""Rows of steps or actions held in memory at a time."""

SUGGESTIONS = 5


class RunNotFound(ArlError):
    """No run has that uid or id. ``suggestions`` are the stored uids nearest to it."""

    def __init__(self, run: str, location: str, suggestions: list[str], newest: list[str]) -> None:
        self.run = run
        self.suggestions = suggestions
        if not newest:
            message = f"no run {run!r}: the store {location} holds no runs yet"
        elif suggestions:
            message = f"no run {run!r} in {location}; did you mean {', '.join(map(repr, suggestions))}?"
        else:
            message = (
                f"no run {run!r} in {location}; its newest are {', '.join(map(repr, newest))} "
                "(`arl-run results list` shows every run)"
            )
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Reader:
    """A connection to a store, and where that store is (for messages)."""

    conn: Connection
    location: str


@contextlib.contextmanager
def reading(store: Store = None) -> Iterator[Reader]:
    """A connection to ``store`` for reading, once the runs of this host whose process died
    are marked INTERRUPTED (:func:`arl.store.query.interrupt_dead_runs`); a failing query
    becomes an :class:`ArlError`.

    Reading never creates a store: a SQLite file that does not exist, or a database
    without arl's schema, is :class:`StoreNotFound`. An engine given is left open; one
    opened here is disposed on exit.
    """
    with _engine(store) as engine:
        location = describe_location(engine.url.render_as_string(hide_password=False))
        try:
            interrupt_dead_runs(engine)  # a run whose process died shows as what it is
            with engine.connect() as conn:
                yield Reader(conn, location)
        except SQLAlchemyError as exc:
            raise ArlError(f"reading the store {location} failed: {short_error(exc)}") from exc


@contextlib.contextmanager
def _engine(store: Store) -> Iterator[Engine]:
    if isinstance(store, Engine):
        yield store
        return
    url = f"sqlite:///{os.path.abspath(os.fspath(store))}" if isinstance(store, os.PathLike) else store_url(store)
    engine = open_store(url, create=False)
    try:
        yield engine
    finally:
        engine.dispose()


# -- runs -----------------------------------------------------------------------------------

RUN_COLUMNS = (
    "id", "uid", "experiment_uid", "status", "seed", "swept", "host", "arl_version", "started_at", "ended_at",
    "duration_s", "end_reason", "error", "phases", "episodes", "steps", "actions",
)  # fmt: skip
"""The columns of :func:`run_records` (``swept``: a dict of the ``--sweep`` values the run
was made with, ``{"dotted.key": value}`` keys sorted, or None); :func:`find_run`'s record
also has ``checkpoints``."""

_COUNT_NAMES = {"environment_steps": "steps", "agent_actions": "actions"}
"""The results' names of the counts that :func:`arl.store.query.run_count_columns` names
after their tables."""


def _runs_query() -> Query:
    counts = [column.element.label(_COUNT_NAMES.get(column.name, column.name)) for column in run_count_columns()]
    return select(
        RunRow.id, RunRow.uid, RunRow.experiment_uid, RunRow.status, RunRow.seed, RunRow.swept, RunRow.host,
        RunRow.arl_version, RunRow.started_at, RunRow.ended_at, RunRow.end_reason, RunRow.error, *counts,
    )  # fmt: skip


def run_records(
    reader: Reader,
    *,
    experiment: str | None = None,
    status: str | None = None,
    uid: str | None = None,
    last: int | None = None,
) -> list[Record]:
    """The runs, oldest first, each with its counts of phases, episodes, steps and actions.

    ``uid`` may hold ``*`` wildcards (``"e2e*"`` matches every run of a sweep); ``status``
    is any case; ``last`` keeps the newest that many runs of those that match.
    """
    query = _runs_query().order_by(RunRow.id.desc())
    if experiment is not None:
        query = query.where(RunRow.experiment_uid == experiment)
    if status is not None:
        query = query.where(RunRow.status == _status(status))
    if uid is not None:
        query = query.where(_uid_matches(uid))
    if last is not None:
        query = query.limit(last)
    now = datetime.now(UTC)
    records = [_run_record(row._mapping, now) for row in reader.conn.execute(query)]
    return [{column: record[column] for column in RUN_COLUMNS} for record in reversed(records)]


def _status(status: str) -> str:
    if status.upper() not in STORED_STATUSES:
        known = ", ".join(s.lower() for s in STORED_STATUSES)
        raise ArlError(f"no run status {status!r}; a run is one of {known}")
    return str(RunStatus(status.upper()))


def _uid_matches(pattern: str) -> Any:
    if "*" not in pattern:
        return RunRow.uid == pattern
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return RunRow.uid.like(escaped.replace("*", "%"), escape="\\")


def _run_record(row: Mapping[Any, Any], now: datetime) -> Record:
    """A run's row with its duration, its swept values with their keys in order (PostgreSQL's
    JSONB keeps none: the same on every backend)."""
    record = _with_duration(dict(row), now)
    if record["swept"] is not None:
        record["swept"] = dict(sorted(record["swept"].items()))
    return record


def _with_duration(record: Record, now: datetime) -> Record:
    """Seconds from start to end; for a run or phase not ended, to ``now``."""
    started, ended = record["started_at"], record["ended_at"]
    record["duration_s"] = None if started is None else ((ended or now) - started).total_seconds()
    return record


def find_run(reader: Reader, run: str | int) -> Record:
    """The run ``run`` names, with its counts (:data:`RUN_COLUMNS` and ``checkpoints``): by
    database id when it is a number and such a run exists, else the newest run with that
    uid. Raises :class:`RunNotFound`."""
    if not isinstance(run, str):
        run = operator.index(run)  # a numpy integer too: an id from a DataFrame's column
    by_id = run if isinstance(run, int) else int(run) if run.isdigit() else None
    matches = RunRow.uid == str(run)
    id_first: list[Any] = []
    if by_id is not None:
        matches = matches | (RunRow.id == by_id)
        id_first = [case((RunRow.id == by_id, 0), else_=1)]  # before a uid that looks like the id
    query = _runs_query().where(matches).order_by(*id_first, RunRow.id.desc()).limit(1)
    found = reader.conn.execute(query).first()
    if found is None:
        newest_first = select(RunRow.uid).group_by(RunRow.uid).order_by(func.max(RunRow.id).desc())
        uids = list(reader.conn.execute(newest_first).scalars())
        nearest = difflib.get_close_matches(str(run), uids, n=SUGGESTIONS, cutoff=0.5)
        raise RunNotFound(str(run), reader.location, nearest, uids[:SUGGESTIONS])
    return _run_record(found._mapping, datetime.now(UTC))


def any_runs(reader: Reader) -> bool:
    """Whether the store holds a run at all."""
    return reader.conn.execute(select(RunRow.id).limit(1)).first() is not None


def event_records(reader: Reader, run_id: int) -> list[Record]:
    """The run's events in order: ``at``, ``kind`` and ``detail`` (a dict)."""
    query = select(EventRow.at, EventRow.kind, EventRow.detail).where(EventRow.run_id == run_id).order_by(EventRow.id)
    return [dict(row._mapping) for row in reader.conn.execute(query)]


METRIC_COLUMNS = ("phase", "phase_name", "agent", "worker", "name", "step", "value", "time")
"""The columns of :func:`metric_records`."""


def metric_records(
    reader: Reader, run_id: int, *, phase: PhaseKey = None, agent: str | None = None, name: str | None = None
) -> list[Record]:
    """What the run's brains and muscles logged (``log_metric``), ordered by phase, agent,
    worker (the brain's, with none, first), name, step and arrival; kept to one phase (by
    index or name), agent or metric name when asked."""
    m = MetricRow
    columns = (PhaseRow.index.label("phase"), PhaseRow.name.label("phase_name"), m.agent, m.worker, m.name, m.step)
    query = select(*columns, m.value, m.time).join(PhaseRow, m.phase_id == PhaseRow.id).where(m.run_id == run_id)
    if isinstance(phase, int):
        query = query.where(PhaseRow.index == phase)
    elif phase is not None:
        query = query.where(PhaseRow.name == phase)
    if agent is not None:
        query = query.where(m.agent == agent)
    if name is not None:
        query = query.where(m.name == name)
    # coalesce: SQLite sorts NULL first, PostgreSQL last; the brain's values come first on both.
    query = query.order_by(PhaseRow.index, m.agent, func.coalesce(m.worker, -1), m.name, m.step, m.id)
    return [dict(row._mapping) for row in reader.conn.execute(query)]


# -- phases and episodes ----------------------------------------------------------------------

PHASE_COLUMNS = (
    "phase", "name", "mode", "started_at", "ended_at", "duration_s", "end_reason", "episodes", "steps",
)  # fmt: skip


def phase_records(reader: Reader, run_id: int) -> list[Record]:
    """The run's phases in order, each with its counts of episodes and environment steps."""
    episodes = select(func.count()).select_from(EpisodeRow).where(EpisodeRow.phase_id == PhaseRow.id)
    steps = (
        select(func.count())
        .select_from(EnvironmentStepRow)
        .join(EpisodeRow, EnvironmentStepRow.episode_id == EpisodeRow.id)
        .where(EpisodeRow.phase_id == PhaseRow.id)
    )
    query = (
        select(
            PhaseRow.index.label("phase"),
            PhaseRow.name,
            PhaseRow.mode,
            PhaseRow.started_at,
            PhaseRow.ended_at,
            PhaseRow.end_reason,
            episodes.scalar_subquery().label("episodes"),
            steps.scalar_subquery().label("steps"),
        )
        .where(PhaseRow.run_id == run_id)
        .order_by(PhaseRow.index)
    )
    now = datetime.now(UTC)
    records = [_with_duration(dict(row._mapping), now) for row in reader.conn.execute(query)]
    return [{column: record[column] for column in PHASE_COLUMNS} for record in records]


EPISODE_COLUMNS = (
    "episode_id", "phase", "phase_name", "mode", "worker", "episode", "started_at", "ended_at", "steps", "end_reason",
)  # fmt: skip


def episode_records(reader: Reader, run_id: int) -> list[Record]:
    """The run's episodes ordered by phase, episode index and worker.

    ``steps`` of an episode still running (or cut short by a dead process) is the last
    step stored so far.
    """
    stored_steps = select(func.max(EnvironmentStepRow.step)).where(EnvironmentStepRow.episode_id == EpisodeRow.id)
    query = (
        select(
            EpisodeRow.id.label("episode_id"),
            PhaseRow.index.label("phase"),
            PhaseRow.name.label("phase_name"),
            PhaseRow.mode,
            EpisodeRow.worker,
            EpisodeRow.index.label("episode"),
            EpisodeRow.started_at,
            EpisodeRow.ended_at,
            func.coalesce(EpisodeRow.steps, stored_steps.scalar_subquery(), 0).label("steps"),
            EpisodeRow.end_reason,
        )
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id)
        .order_by(PhaseRow.index, EpisodeRow.index, EpisodeRow.worker)
    )
    return [dict(row._mapping) for row in reader.conn.execute(query)]


def agent_returns(reader: Reader, run_id: int) -> dict[int, dict[str, float]]:
    """Each episode's return per agent: the sum of the agent's ``objective`` over its actions."""
    a = AgentActionRow
    query = _under_run(select(a.episode_id, a.agent, func.sum(a.objective)), a.episode_id, run_id)
    returns: dict[int, dict[str, float]] = {}
    for episode_id, agent, total in reader.conn.execute(query.group_by(a.episode_id, a.agent)):
        returns.setdefault(episode_id, {})[agent] = float(total)
    return returns


class EpisodeTable(NamedTuple):
    """The rows of :func:`episode_table`, its columns, and the agents it has returns of."""

    records: list[Record]
    columns: list[str]
    agents: list[str]


def episode_table(reader: Reader, run_id: int, *, rewards: bool = True) -> EpisodeTable:
    """The run's episodes (:func:`episode_records`), each with ``return.<agent>`` for every
    agent (NaN where it took no action) and, with ``rewards``, ``rewards.<reward id>``
    for every environment reward (:func:`reward_sums`)."""
    records = episode_records(reader, run_id)
    returns = agent_returns(reader, run_id)
    sums = reward_sums(reader, run_id) if rewards else {}
    agents = sorted({agent for by_agent in returns.values() for agent in by_agent})
    reward_ids = sorted({key for by_id in sums.values() for key in by_id})
    for record in records:
        by_agent, by_id = returns.get(record["episode_id"], {}), sums.get(record["episode_id"], {})
        record.update({f"return.{agent}": by_agent.get(agent, math.nan) for agent in agents})
        record.update({f"rewards.{key}": by_id.get(key, math.nan) for key in reward_ids})
    columns = [*EPISODE_COLUMNS, *(f"return.{a}" for a in agents), *(f"rewards.{k}" for k in reward_ids)]
    return EpisodeTable(records, columns, agents)


def reward_sums(reader: Reader, run_id: int) -> dict[int, dict[str, float]]:
    """Each episode's sum of every environment reward, by reward id (``env.reward``).

    Rewards are JSON, so this reads every step of the run (in chunks). A reward id with a
    value that is not a number somewhere in the run has no sum: it is left out.
    """
    s = EnvironmentStepRow
    query = _under_run(select(s.episode_id, s.rewards), s.episode_id, run_id)
    sums: dict[int, dict[str, float]] = {}
    not_numbers: set[str] = set()
    result = reader.conn.execution_options(yield_per=CHUNK_ROWS).execute(query)
    for episode_id, rewards in result:
        totals = sums.setdefault(episode_id, {})
        for key, value in (rewards or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0.0) + value
            elif value is not None:
                not_numbers.add(key)
    return {episode: {k: v for k, v in totals.items() if k not in not_numbers} for episode, totals in sums.items()}


def _under_run(query: Query, episode_of_row: Any, run_id: int, phase: PhaseKey = None) -> Query:
    """``query`` kept to the rows of run ``run_id`` (of one phase, by index or name), its
    rows joined to their episode and phase through ``episode_of_row``."""
    query = (
        query.join(EpisodeRow, episode_of_row == EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id)
    )
    if isinstance(phase, int):
        query = query.where(PhaseRow.index == phase)
    elif phase is not None:
        query = query.where(PhaseRow.name == phase)
    return query


# -- steps and actions ------------------------------------------------------------------------

KEY_COLUMNS = ("episode_id", "phase", "worker", "episode")
"""The columns that say which episode a step or action is of."""

_KEYS = (
    EpisodeRow.id.label("episode_id"), PhaseRow.index.label("phase"), EpisodeRow.worker,
    EpisodeRow.index.label("episode"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FlatTable:
    """A big table of a run, read flat (:func:`flatten`) by :func:`flat_chunks`."""

    row: type[Any]
    """The table's row class (its ``episode_id``, ``step`` and ``id`` are used)."""
    fields: tuple[str, ...]
    """The row's columns kept as they are, after :data:`KEY_COLUMNS`."""
    json_columns: tuple[str, ...]
    """The row's JSON columns, each spread into one column per key."""
    tie_break: str
    """Orders the rows of one step (after phase, worker, episode and step)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of every record; then one per key of its JSON columns."""
        return (*KEY_COLUMNS, *self.fields)


STEPS = FlatTable(
    EnvironmentStepRow,
    ("step", "env_uid", "terminated", "truncated", "sim_time"),
    ("sensors", "rewards", "info"),
    "env_uid",
)
ACTIONS = FlatTable(
    AgentActionRow, ("step", "agent", "objective", "policy_version"), ("inputs", "setpoints", "rewards"), "agent"
)
FLAT_TABLES = {"steps": STEPS, "actions": ACTIONS}


def flat_chunks(
    reader: Reader,
    run_id: int,
    table: FlatTable,
    *,
    phase: PhaseKey = None,
    up_to_id: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[list[Record]]:
    """The run's rows of ``table`` (:data:`STEPS`, :data:`ACTIONS`), flat (:func:`flatten`),
    in chunks of ``chunk_rows``, ordered by phase, worker, episode, step and the table's
    tie break.

    Each record also holds ``_id``, the row's database id: rows of one run are written by
    one writer in id order, so ``up_to_id`` reads again exactly the rows read before.
    """
    row = table.row
    kept = (getattr(row, column) for column in (*table.fields, *table.json_columns))
    query = _under_run(select(row.id.label("_id"), *_KEYS, *kept).select_from(row), row.episode_id, run_id, phase)
    if up_to_id is not None:
        query = query.where(row.id <= up_to_id)
    tie_break = getattr(row, table.tie_break)
    query = query.order_by(PhaseRow.index, EpisodeRow.worker, EpisodeRow.index, row.step, tie_break, row.id)
    return _chunks(reader, query, table.json_columns, chunk_rows)


def _chunks(reader: Reader, query: Query, json_columns: tuple[str, ...], size: int) -> Iterator[list[Record]]:
    result = reader.conn.execution_options(yield_per=size).execute(query)
    for partition in result.partitions():
        yield [flatten(row._mapping, json_columns) for row in partition]


_SPREAD_ORDER = {name: rank for rank, name in enumerate(("sensors", "inputs", "setpoints", "rewards", "info"))}


def column_order(fixed: tuple[str, ...], seen: Iterable[str]) -> list[str]:
    """``fixed``, then the spread columns grouped by the JSON column they came from, each
    group in the order its columns were first ``seen``."""
    spread = [column for column in dict.fromkeys(seen) if column not in fixed]
    return [*fixed, *sorted(spread, key=lambda column: _SPREAD_ORDER.get(column.partition(".")[0], len(_SPREAD_ORDER)))]


def flatten(row: Mapping[Any, Any], json_columns: tuple[str, ...]) -> Record:
    """A row with each JSON column spread into one entry per key, named ``column.key``
    (``sensors.env.s0``). Values are kept as they are: a list stays a list."""
    flat = {name: value for name, value in row.items() if name not in json_columns}
    for column in json_columns:
        for key, value in (row[column] or {}).items():
            flat[f"{column}.{key}"] = value
    return flat


def compare_records(reader: Reader, runs: list[str | int]) -> tuple[list[Record], tuple[str, ...]]:
    """Runs side by side: a record per run (``run``, ``id``, ``status``; each value it was
    swept over, named by its key as given to ``--sweep``; then each phase and agent's mean
    return over the phase's episodes, as ``<phase>/<agent>``, and the phase's episodes, as
    ``<phase>/episodes``), and every column in order (swept keys by name, phases as they
    ran, agents by name; a key, phase or agent only a later run has comes after those of
    the runs before it). A run missing a swept key, phase or agent has no value there."""
    records: list[Record] = []
    swept: dict[str, None] = {}
    returns: dict[str, None] = {}
    for key in runs:
        found = find_run(reader, key)
        record: Record = {"run": found["uid"], "id": found["id"], "status": found["status"]}
        for name, value in (found["swept"] or {}).items():  # a dotted key: never "run", nor "<phase>/..."
            swept[name] = None
            record[name] = value
        for column, value in _phase_returns(reader, found["id"]).items():
            returns[column] = None
            record[column] = value
        records.append(record)
    return records, (*COMPARE_COLUMNS, *swept, *returns)


COMPARE_COLUMNS = ("run", "id", "status")
"""The first columns of :func:`compare_records`."""


def _phase_returns(reader: Reader, run_id: int) -> dict[str, float | int]:
    """``<phase>/episodes`` and ``<phase>/<agent>`` (the agent's mean return over the
    phase's episodes) of run ``run_id``, phases as they ran, agents by name."""
    by_episode = agent_returns(reader, run_id)
    sums: dict[tuple[int, str, str], list[float]] = {}
    counts: dict[tuple[int, str], int] = {}
    for episode in episode_records(reader, run_id):
        phase = (episode["phase"], episode["phase_name"])
        counts[phase] = counts.get(phase, 0) + 1
        for agent, value in by_episode.get(episode["episode_id"], {}).items():
            sums.setdefault((*phase, agent), []).append(value)
    columns: dict[str, float | int] = {}
    for (index, name), count in sorted(counts.items()):
        columns[f"{name}/episodes"] = count
        for (i, _, agent), values in sorted(sums.items()):
            if i == index:
                columns[f"{name}/{agent}"] = sum(values) / len(values)
    return columns
