"""The read side of the store: what a run stored, as plain Python values (no pandas).

Every query starts from one run and walks down its indexed parent columns (run ->
phases -> episodes -> steps and actions), in portable SQL that SQLite and PostgreSQL
both run; JSON columns come back as dicts on both. The big tables are read in chunks
(:func:`step_chunks`, :func:`action_chunks`) so that memory stays bounded however long
the run was.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from arl.errors import ArlError
from arl.store.engine import describe_location, open_store
from arl.store.location import store_url
from arl.store.query import interrupt_dead_runs
from arl.store.schema import (
    AgentActionRow,
    CheckpointRow,
    EnvironmentStepRow,
    EpisodeRow,
    EventRow,
    PhaseRow,
    RunRow,
    RunStatus,
)

if TYPE_CHECKING:
    from sqlalchemy import Select

    Query = Select[*tuple[Any, ...]]

Store = str | os.PathLike[str] | Engine | None
"""A store to read: a SQLAlchemy URL, the path of a SQLite file, an open engine (left
open), or None for ``$ARL_STORE_URL``, else ``sqlite:///arl.db``."""

Record = dict[str, Any]
PhaseKey = int | str | None
"""A phase by index or by name; None for every phase."""

CHUNK_ROWS = 5_000
"""Rows of steps or actions held in memory at a time."""

SUGGESTIONS = 5


class StoreNotFound(ArlError):
    """The store to read does not exist (reading never creates one)."""


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
    """A connection to ``store`` for reading; a failing query becomes an :class:`ArlError`.

    A SQLite file that does not exist is :class:`StoreNotFound` instead of a new, empty
    store. An engine given is left open; one opened here is disposed on exit.
    """
    if isinstance(store, Engine):
        with _read(store, describe_location(store.url.render_as_string(hide_password=False))) as reader:
            yield reader
        return
    url = f"sqlite:///{os.path.abspath(os.fspath(store))}" if isinstance(store, os.PathLike) else store_url(store)
    location = describe_location(url)
    if _is_missing_sqlite_file(url):
        raise StoreNotFound(f"no store at {location}: give --store URL or set ARL_STORE_URL")
    engine = open_store(url)
    try:
        interrupt_dead_runs(engine)  # a run whose process died shows as what it is: INTERRUPTED
        with _read(engine, location) as reader:
            yield reader
    finally:
        engine.dispose()


@contextlib.contextmanager
def _read(engine: Engine, location: str) -> Iterator[Reader]:
    try:
        with engine.connect() as conn:
            yield Reader(conn, location)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise ArlError(f"reading the store {location} failed: {type(cause).__name__}: {cause}") from exc


def _is_missing_sqlite_file(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # open_store says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return parsed.query.get("mode") != "memory" and not os.path.exists(os.path.expanduser(parsed.database))


# -- runs -----------------------------------------------------------------------------------


def _count_for_run(model: Any, *joins: Any) -> Any:
    """``count(*)`` of ``model``'s rows under the run of the enclosing query (correlated)."""
    query = select(func.count()).select_from(model)
    for target, onclause in joins:
        query = query.join(target, onclause)
    return query.where(PhaseRow.run_id == RunRow.id).scalar_subquery()


_EPISODES_OF_RUN = ((PhaseRow, EpisodeRow.phase_id == PhaseRow.id),)
_ROWS_OF_RUN = ((EpisodeRow, EnvironmentStepRow.episode_id == EpisodeRow.id), *_EPISODES_OF_RUN)
_ACTIONS_OF_RUN = ((EpisodeRow, AgentActionRow.episode_id == EpisodeRow.id), *_EPISODES_OF_RUN)

RUN_COLUMNS = (
    "id", "uid", "experiment_uid", "status", "seed", "host", "arl_version", "started_at", "ended_at",
    "duration_s", "end_reason", "error", "phases", "episodes", "steps", "actions",
)  # fmt: skip


def _runs_query() -> Query:
    return select(
        RunRow.id, RunRow.uid, RunRow.experiment_uid, RunRow.status, RunRow.seed, RunRow.host,
        RunRow.arl_version, RunRow.started_at, RunRow.ended_at, RunRow.end_reason, RunRow.error,
        select(func.count()).where(PhaseRow.run_id == RunRow.id).scalar_subquery().label("phases"),
        _count_for_run(EpisodeRow, *_EPISODES_OF_RUN).label("episodes"),
        _count_for_run(EnvironmentStepRow, *_ROWS_OF_RUN).label("steps"),
        _count_for_run(AgentActionRow, *_ACTIONS_OF_RUN).label("actions"),
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
    records = [_with_duration(dict(row._mapping), now) for row in reader.conn.execute(query)]
    return [{column: record[column] for column in RUN_COLUMNS} for record in reversed(records)]


def _status(status: str) -> str:
    try:
        return str(RunStatus(status.upper()))
    except ValueError:
        known = ", ".join(s.lower() for s in RunStatus)
        raise ArlError(f"no run status {status!r}; a run is one of {known}") from None


def _uid_matches(pattern: str) -> Any:
    if "*" not in pattern:
        return RunRow.uid == pattern
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return RunRow.uid.like(escaped.replace("*", "%"), escape="\\")


def _with_duration(record: Record, now: datetime) -> Record:
    """Seconds from start to end; for a run or phase not ended, to ``now``."""
    started, ended = record["started_at"], record["ended_at"]
    record["duration_s"] = None if started is None else ((ended or now) - started).total_seconds()
    return record


def find_run(reader: Reader, run: str | int) -> Record:
    """The run ``run`` names, with its counts: by database id when it is a number and such
    a run exists, else the newest run with that uid. Raises :class:`RunNotFound`."""
    by_id = run if isinstance(run, int) else int(run) if run.isdigit() else None
    if by_id is not None:
        found = reader.conn.execute(_runs_query().where(RunRow.id == by_id)).first()
        if found is not None:
            return _with_duration(dict(found._mapping), datetime.now(UTC))
    newest = _runs_query().where(RunRow.uid == str(run)).order_by(RunRow.id.desc()).limit(1)
    found = reader.conn.execute(newest).first()
    if found is None:
        newest_first = select(RunRow.uid).group_by(RunRow.uid).order_by(func.max(RunRow.id).desc())
        uids = list(reader.conn.execute(newest_first).scalars())
        nearest = difflib.get_close_matches(str(run), uids, n=SUGGESTIONS, cutoff=0.5)
        raise RunNotFound(str(run), reader.location, nearest, uids[:SUGGESTIONS])
    return _with_duration(dict(found._mapping), datetime.now(UTC))


def checkpoint_count(reader: Reader, run_id: int) -> int:
    query = select(func.count()).select_from(CheckpointRow).where(CheckpointRow.run_id == run_id)
    return int(reader.conn.execute(query).scalar_one())


def event_records(reader: Reader, run_id: int) -> list[Record]:
    """The run's events in order: ``at``, ``kind`` and ``detail`` (a dict)."""
    query = select(EventRow.at, EventRow.kind, EventRow.detail).where(EventRow.run_id == run_id).order_by(EventRow.id)
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
    query = (
        select(AgentActionRow.episode_id, AgentActionRow.agent, func.sum(AgentActionRow.objective))
        .join(EpisodeRow, AgentActionRow.episode_id == EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id)
        .group_by(AgentActionRow.episode_id, AgentActionRow.agent)
    )
    returns: dict[int, dict[str, float]] = {}
    for episode_id, agent, total in reader.conn.execute(query):
        returns.setdefault(episode_id, {})[agent] = float(total)
    return returns


def episode_table(reader: Reader, run_id: int, *, rewards: bool = True) -> tuple[list[Record], list[str]]:
    """The run's episodes (:func:`episode_records`), each with ``return.<agent>`` for every
    agent (NaN where it took no action) and, with ``rewards``, ``rewards.<reward id>``
    for every environment reward (:func:`reward_sums`); and the table's columns."""
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
    return records, columns


def reward_sums(reader: Reader, run_id: int) -> dict[int, dict[str, float]]:
    """Each episode's sum of every environment reward, by reward id (``env.reward``).

    Rewards are JSON, so this reads every step of the run (in chunks). A reward id with a
    value that is not a number somewhere in the run has no sum: it is left out.
    """
    query = (
        select(EnvironmentStepRow.episode_id, EnvironmentStepRow.rewards)
        .join(EpisodeRow, EnvironmentStepRow.episode_id == EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id)
    )
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


# -- steps and actions ------------------------------------------------------------------------

STEP_COLUMNS = ("episode_id", "phase", "worker", "episode", "step", "env_uid", "terminated", "truncated")
"""The columns of every step record; then one a sensor and reward id (:func:`flatten`)."""
ACTION_COLUMNS = ("episode_id", "phase", "worker", "episode", "step", "agent", "objective")
"""The columns of every action record; then one an input, setpoint and reward id."""
_STEP_JSON = ("sensors", "rewards")
_ACTION_JSON = ("inputs", "setpoints", "rewards")


def _under_run(query: Query, episode_of_row: Any, run_id: int, phase: PhaseKey) -> Query:
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


_KEYS = (
    EpisodeRow.id.label("episode_id"), PhaseRow.index.label("phase"), EpisodeRow.worker,
    EpisodeRow.index.label("episode"),
)  # fmt: skip


def step_chunks(
    reader: Reader, run_id: int, *, phase: PhaseKey = None, up_to_id: int | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[Record]]:
    """The run's environment steps, flat (:func:`flatten`), in chunks of ``chunk_rows``,
    ordered by phase, worker, episode, step and environment.

    Each record also holds ``_id``, the row's database id: rows of one run are written by
    one writer in id order, so ``up_to_id`` reads again exactly the rows read before.
    """
    s = EnvironmentStepRow
    query = select(
        s.id.label("_id"), *_KEYS, s.step, s.env_uid, s.terminated, s.truncated, s.sensors, s.rewards
    ).select_from(s)
    query = _under_run(query, s.episode_id, run_id, phase)
    if up_to_id is not None:
        query = query.where(s.id <= up_to_id)
    query = query.order_by(PhaseRow.index, EpisodeRow.worker, EpisodeRow.index, s.step, s.env_uid, s.id)
    return _chunks(reader, query, _STEP_JSON, chunk_rows)


def action_chunks(
    reader: Reader, run_id: int, *, phase: PhaseKey = None, up_to_id: int | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[Record]]:
    """The run's agent actions, flat, in chunks; as :func:`step_chunks`."""
    a = AgentActionRow
    query = select(
        a.id.label("_id"), *_KEYS, a.step, a.agent, a.objective, a.inputs, a.setpoints, a.rewards
    ).select_from(a)
    query = _under_run(query, a.episode_id, run_id, phase)
    if up_to_id is not None:
        query = query.where(a.id <= up_to_id)
    query = query.order_by(PhaseRow.index, EpisodeRow.worker, EpisodeRow.index, a.step, a.agent, a.id)
    return _chunks(reader, query, _ACTION_JSON, chunk_rows)


def _chunks(reader: Reader, query: Query, json_columns: tuple[str, ...], size: int) -> Iterator[list[Record]]:
    result = reader.conn.execution_options(yield_per=size).execute(query)
    for partition in result.partitions():
        yield [flatten(row._mapping, json_columns) for row in partition]


_SPREAD_ORDER = {name: rank for rank, name in enumerate(("sensors", "inputs", "setpoints", "rewards"))}


def column_order(fixed: tuple[str, ...], seen: Iterable[str]) -> list[str]:
    """``fixed``, then the spread columns grouped by the JSON column they came from, each
    group in the order its columns were first ``seen``."""
    spread = [column for column in dict.fromkeys(seen) if column not in fixed and column != "_id"]
    return [*fixed, *sorted(spread, key=lambda column: _SPREAD_ORDER.get(column.partition(".")[0], len(_SPREAD_ORDER)))]


def flatten(row: Mapping[Any, Any], json_columns: tuple[str, ...]) -> Record:
    """A row with each JSON column spread into one entry per key, named ``column.key``
    (``sensors.env.s0``). Values are kept as they are: a list stays a list."""
    flat = {name: value for name, value in row.items() if name not in json_columns}
    for column in json_columns:
        for key, value in (row[column] or {}).items():
            flat[f"{column}.{key}"] = value
    return flat
