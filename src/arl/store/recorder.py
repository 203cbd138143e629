"""Records into rows: the writer thread's handling of each record, its buffer of steps and
actions, and its transactions (:class:`Recorder`).

Records are processed strictly in arrival order: parent rows (run, phase, episode) are
inserted at once so their ids are known to the rows that follow, while environment steps
and agent actions (and the values agents log, :class:`~arl.messages.store.Metrics`) are
collected and inserted in batches (:mod:`arl.store.bulk`) at each commit: a few multi-row
INSERTs per table per transaction, never a commit per step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Insert, Update, and_, bindparam, case, func, insert, select, update
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from arl.api import METRIC_NAME_LENGTH
from arl.codec import CODEC_VERSION, decode, encode, unpack
from arl.errors import ArlError, ProtocolError
from arl.messages import store as rec
from arl.store.bulk import BulkInsert, table
from arl.store.engine import short_error
from arl.store.guard import Patience, StoreFile
from arl.store.jsontext import column_text
from arl.store.query import close_open_rows, this_process
from arl.store.schema import (
    TERMINAL_STATUSES,
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
    utc,
)

log = logging.getLogger("arl.store")

LOGGED_DROPS = 20
"""Dropped records logged one by one; after that they are only counted."""

COUNTED = ("phases", "episodes", "environment_steps", "agent_actions", "checkpoints", "metrics", "dropped")

# Malformed records raise these. RecursionError: a value nested deeper than the JSON
# encoder goes (the codec refuses frames nested deeper than arl.codec.MAX_DEPTH).
_BAD_RECORD = (ProtocolError, TypeError, ValueError, OverflowError, RecursionError)

# -- the wire layout of the two hot records ----------------------------------------------
# Steps and actions are most of the traffic. The writer reads them straight from the
# unpacked frame ``[version, tag, *fields]`` (arl.codec's documented layout) instead of
# building a frozen dataclass per row, which costs as much as unpacking the frame.

_KEY_FIELDS = ("phase", "worker", "episode", "step")
_ENV_FIELDS = (*_KEY_FIELDS, "env_uid", "sensors", "rewards", "terminated", "truncated", "sim_time", "info")
_ENV_FRAME = 2 + len(_ENV_FIELDS)  # [version, tag, *fields]
_ACTION_FIELDS = (*_KEY_FIELDS, "agent", "inputs", "setpoints", "rewards", "objective", "policy_version")


def _checked_tag(cls: type[Any], expected_fields: tuple[str, ...]) -> str:
    """The wire tag of ``cls``, after checking its fields are where the fast path reads them."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    if names != expected_fields:
        raise RuntimeError(f"{cls.__name__} has fields {names}; update arl.store.recorder to match")
    tag: str = unpack(encode(cls(*[None] * len(names))))[1]
    return tag


_ENV_TAG = _checked_tag(rec.EnvironmentStep, _ENV_FIELDS)
_ACTION_TAG = _checked_tag(rec.AgentAction, _ACTION_FIELDS)
RECORD_TYPES = frozenset(
    {
        rec.RunStarted, rec.RunResumed, rec.PhaseStarted, rec.EpisodeStarted, rec.EnvironmentStep, rec.AgentAction,
        rec.EpisodeEnded, rec.PhaseEnded, rec.CheckpointSaved, rec.Event, rec.Metrics, rec.RunEnded, rec.Flush,
        rec.WorkerLost,
    }
)  # fmt: skip


# -- the records --------------------------------------------------------------------------

EpisodeKey = tuple[Any, Any, Any]  # (phase index, worker, episode index) as they arrived


@dataclasses.dataclass(frozen=True)
class WorkerProgress:
    """What the store holds of a worker's phase when its processes died (``WorkerLost``):
    the index its next episode takes (one past the last it started), the episodes it
    ended before the death, and the steps of every episode it stored (the cut ones too)."""

    next_episode: int
    episodes: int
    steps: int


class Recorder:
    """Turns records into rows on one connection. Used by the writer thread only.

    Keeps the natural key -> id maps of the run's phases and episodes, the step and action
    rows not yet inserted, and what the open transaction holds. ``store_file``, the SQLite
    file when the store is one, is checked at every commit (:class:`StoreFile`); a busy
    SQLite is waited out for up to ``patience`` seconds (:class:`Patience`).
    ``after_commit`` is called after every commit (the writer's checkpointer wants to know).
    """

    def __init__(
        self,
        conn: Connection,
        counts: dict[str, int],
        *,
        store_file: StoreFile | None = None,
        patience: Patience | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._after_commit = after_commit
        self.counts = counts
        self._store_file = store_file
        self.patience = patience or Patience()
        self._env_insert = BulkInsert(
            EnvironmentStepRow,
            ("episode_id", "step", "env_uid", "sensors", "rewards", "terminated", "truncated", "sim_time", "info"),
            {"sensors", "rewards", "info"},
            conn.dialect,
        )
        self._action_insert = BulkInsert(
            AgentActionRow,
            ("episode_id", "step", "agent", "inputs", "setpoints", "rewards", "objective", "policy_version"),
            {"inputs", "setpoints", "rewards"},
            conn.dialect,
        )
        self._metric_insert = BulkInsert(
            MetricRow,
            ("run_id", "phase_id", "agent", "worker", "name", "step", "value", "time"),
            set(),
            conn.dialect,
            typed=True,  # a datetime column: through SQLAlchemy's types on every backend
        )
        self._env_rows: list[tuple[Any, ...]] = []
        self._action_rows: list[tuple[Any, ...]] = []
        self._metric_rows: list[tuple[Any, ...]] = []
        # PostgreSQL refuses some values SQLite takes (a NUL in a string): each batch goes
        # in under a savepoint, so a refused row costs that row, not the transaction.
        self._savepoints = conn.dialect.name == "postgresql"
        self.pending_rows = 0
        self.dirty_since: float | None = None  # monotonic time of the first uncommitted write
        self._uncommitted = dict.fromkeys(COUNTED, 0)
        self._run: int | None = None
        self._process = this_process()  # the writer's process is the run's: its death ends the run
        self.run_id: int | None = None  # once committed
        self._phases: dict[Any, int] = {}
        self._inserts: dict[type[Base], Insert] = {}
        self._updates: dict[tuple[Any, ...], Update] = {}
        self._episodes: dict[EpisodeKey, int] = {}
        # (phase, worker) -> its progress at its last WorkerLost; read by the governor's
        # thread after a flush (one dict lookup, so no lock).
        self.lost: dict[tuple[int, int], WorkerProgress] = {}
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            rec.RunStarted: self._run_started,
            rec.RunResumed: self._run_resumed,
            rec.PhaseStarted: self._phase_started,
            rec.EpisodeStarted: self._episode_started,
            rec.EpisodeEnded: self._episode_ended,
            rec.PhaseEnded: self._phase_ended,
            rec.WorkerLost: self._worker_lost,
            rec.CheckpointSaved: self._checkpoint_saved,
            rec.Event: self._event,
            rec.Metrics: self._metrics,
            rec.RunEnded: self._run_ended,
        }

    def handle(self, frame: bytes) -> int | None:
        """Process one frame; returns the token when it is a :class:`Flush`. A malformed
        record is dropped and counted; a database error propagates."""
        try:
            message = unpack(frame)
            if type(message) is not list or len(message) < 2 or message[0] != CODEC_VERSION:
                raise ProtocolError(f"not a frame of codec version {CODEC_VERSION}")
            tag = message[1]
            if tag == _ENV_TAG:
                self._environment_step(message)
            elif tag == _ACTION_TAG:
                self._agent_action(message)
            else:
                return self._other(decode(frame))
        except _BAD_RECORD as exc:
            self.drop(f"a malformed record ({exc})")
        return None

    def _other(self, record: Any) -> int | None:
        if type(record) is rec.Flush:
            return int(record.token)
        handler = self._handlers.get(type(record))
        if handler is None:
            raise ProtocolError(f"{type(record).__name__} is not a store record")
        try:
            _call(handler, record)
        except _BAD_RECORD as exc:
            if type(record) is rec.RunStarted:  # without its run, every later record would be dropped
                raise ArlError(f"the run's start cannot be stored: {exc}") from exc
            raise
        return None

    def drop(self, what: str) -> None:
        """Count a record that cannot be stored: it is a bug upstream, not a reason to stop
        storing the rest of the run."""
        self.counts["dropped"] += 1
        dropped = self.counts["dropped"]
        if dropped <= LOGGED_DROPS:
            log.error("store: dropped %s", what)
        if dropped == LOGGED_DROPS:
            log.error("store: further dropped records are counted, not logged")

    # -- the hot path -------------------------------------------------------------------

    def _environment_step(self, m: list[Any]) -> None:
        if len(m) == _ENV_FRAME:
            _v, _t, phase, worker, episode, step, env_uid, sensors, rewards, terminated, truncated, sim_time, info = m
        else:  # a frame of an arl before info (or sim_time): None, as the codec's decode fills them
            _v, _t, phase, worker, episode, step, env_uid, sensors, rewards, terminated, truncated, *rest = m
            if len(rest) > 1:
                raise ProtocolError(f"an environment step of {len(m)} fields")
            sim_time, info = (rest[0] if rest else None), None
        episode_id = self._episodes.get((phase, worker, episode))
        if episode_id is None:
            self.drop(f"an environment step of unknown episode {(phase, worker, episode)}")
            return
        if type(env_uid) is not str:
            raise TypeError(f"env_uid must be a string, not a {type(env_uid).__name__}")
        self._env_rows.append(
            (
                episode_id, int(step), env_uid, column_text(sensors), column_text(rewards),
                bool(terminated), bool(truncated), None if sim_time is None else _finite_or_none(sim_time),
                None if info is None else column_text(info),
            )
        )  # fmt: skip
        self.pending_rows += 1
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()

    def _agent_action(self, m: list[Any]) -> None:
        _v, _t, phase, worker, episode, step, agent, inputs, setpoints, rewards, objective, version = m
        episode_id = self._episodes.get((phase, worker, episode))
        if episode_id is None:
            self.drop(f"an agent action of unknown episode {(phase, worker, episode)}")
            return
        if type(agent) is not str:
            raise TypeError(f"agent must be a string, not a {type(agent).__name__}")
        self._action_rows.append(
            (
                episode_id, int(step), agent, column_text(inputs), column_text(setpoints),
                column_text(rewards), float(objective), None if version is None else _integer(version),
            )
        )  # fmt: skip
        self.pending_rows += 1
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()

    # -- parents and ends ----------------------------------------------------------------

    def _run_started(self, r: rec.RunStarted) -> None:
        if self._run is not None:
            self.drop(f"a second RunStarted (uid {r.uid!r}) for the same writer")
            return
        self._run = self._insert(
            RunRow,
            uid=r.uid,
            experiment_uid=r.experiment_uid,
            status=RunStatus.RUNNING.value,
            seed=int(r.seed),
            document=r.document,
            arl_version=r.arl_version,
            host=r.host,
            pid=self._process[0],
            pid_started_at=self._process[1],
            started_at=utc(r.started_at),
            # Left out for no sweep: SQL NULL, where a None would be stored as JSON's null.
            **({} if r.swept is None else {"swept": r.swept}),
        )

    def _run_resumed(self, r: rec.RunResumed) -> None:
        """Go on with a run the store has (rewound to a snapshot): map its phases and
        open episodes to their rows, as if this writer had inserted them."""
        if self._run is not None:
            self.drop(f"RunResumed (run {r.run_id}) for a writer that has its run")
            return
        from arl.store.marks import run_keys  # (only a resumed run needs it)

        self._phases, self._episodes = run_keys(self._conn, int(r.run_id))
        self._run = int(r.run_id)
        self._touch()

    def _phase_started(self, r: rec.PhaseStarted) -> None:
        if self._run is None:
            self.drop(f"PhaseStarted of phase {r.index} before RunStarted")
            return
        if r.index in self._phases:
            self.drop(f"a second PhaseStarted of phase {r.index}")
            return
        self._phases[r.index] = self._insert(
            PhaseRow,
            run_id=self._run,
            index=int(r.index),
            name=r.name,
            mode=r.mode,
            started_at=utc(r.started_at),
        )
        self._uncommitted["phases"] += 1

    def _episode_started(self, r: rec.EpisodeStarted) -> None:
        key = (r.phase, r.worker, r.episode)
        phase_id = self._phases.get(r.phase)
        if phase_id is None:
            self.drop(f"EpisodeStarted {key} of unknown phase {r.phase}")
            return
        if key in self._episodes:
            self.drop(f"a second EpisodeStarted {key}")
            return
        self._episodes[key] = self._insert(
            EpisodeRow,
            phase_id=phase_id,
            worker=int(r.worker),
            index=int(r.episode),
            started_at=utc(r.started_at),
        )
        self._uncommitted["episodes"] += 1

    def _episode_ended(self, r: rec.EpisodeEnded) -> None:
        key = (r.phase, r.worker, r.episode)
        episode_id = self._episodes.get(key)
        if episode_id is None:
            self.drop(f"EpisodeEnded of unknown episode {key}")
            return
        self._update(
            EpisodeRow,
            episode_id,
            ended_at=utc(r.ended_at),
            steps=int(r.steps),
            end_reason=_fit(r.reason, EpisodeRow),
        )

    def _phase_ended(self, r: rec.PhaseEnded) -> None:
        phase_id = self._phases.get(r.index)
        if phase_id is None:
            self.drop(f"PhaseEnded of unknown phase {r.index}")
            return
        self._update(PhaseRow, phase_id, ended_at=utc(r.ended_at), end_reason=_fit(r.reason, PhaseRow))

    def _worker_lost(self, r: rec.WorkerLost) -> None:
        """End the dead worker's open episodes, then note where it stands (:attr:`lost`)."""
        phase_id = self._phases.get(r.phase)
        if phase_id is None or type(r.worker) is not int:
            self.drop(f"WorkerLost of worker {r.worker!r} in unknown phase {r.phase}")
            return
        self._insert_pending()  # the open episode's steps count towards its steps
        ended_at, reason = utc(r.ended_at), _fit(r.reason, EpisodeRow)
        mine = and_(EpisodeRow.phase_id == phase_id, EpisodeRow.worker == r.worker)
        last_step = (
            select(func.max(EnvironmentStepRow.step))
            .where(EnvironmentStepRow.episode_id == EpisodeRow.id)
            .correlate(EpisodeRow)
            .scalar_subquery()
        )
        close = update(EpisodeRow).where(mine, EpisodeRow.ended_at.is_(None))
        self.patience.run(
            self._conn, lambda: self._conn.execute(close.values(ended_at=ended_at, end_reason=reason, steps=last_step))
        )
        self._touch()
        completed = and_(EpisodeRow.ended_at.is_not(None), EpisodeRow.end_reason != reason)
        progress = select(
            func.max(EpisodeRow.index),
            func.sum(case((completed, 1), else_=0)),
            func.sum(func.coalesce(EpisodeRow.steps, 0)),
        ).where(mine)
        last, episodes, steps = self._conn.execute(progress).one()
        self.lost[(r.phase, r.worker)] = WorkerProgress(
            0 if last is None else int(last) + 1, int(episodes or 0), int(steps or 0)
        )

    def _checkpoint_saved(self, r: rec.CheckpointSaved) -> None:
        phase_id = self._phases.get(r.phase)
        if phase_id is None or self._run is None:
            self.drop(f"CheckpointSaved of agent {r.agent!r} in unknown phase {r.phase}")
            return
        self._insert(
            CheckpointRow,
            run_id=self._run,
            phase_id=phase_id,
            agent=r.agent,
            path=r.path,
            sha256=r.sha256,
            saved_at=utc(r.saved_at),
        )
        self._uncommitted["checkpoints"] += 1

    def _event(self, r: rec.Event) -> None:
        if self._run is None:
            self.drop(f"Event {r.kind!r} before RunStarted")
            return
        self._insert(EventRow, run_id=self._run, at=utc(r.at), kind=r.kind, detail=r.detail)

    def _metrics(self, r: rec.Metrics) -> None:
        """Buffer the values, inserted with the steps; a malformed value is dropped alone."""
        phase_id = self._phases.get(r.phase)
        if phase_id is None or self._run is None:
            self.drop(f"Metrics of agent {r.agent!r} in unknown phase {r.phase}")
            return
        if type(r.agent) is not str or type(r.values) is not list:
            raise TypeError("Metrics needs an agent name and a list of values")
        for value in r.values:
            try:
                row = (self._run, phase_id, r.agent, *_metric(value))
            except _BAD_RECORD as exc:
                self.drop(f"a metric of agent {r.agent!r} ({exc})")
                continue
            self._metric_rows.append(row)
            self.pending_rows += 1
        self._touch()

    def _run_ended(self, r: rec.RunEnded) -> None:
        if self._run is None:
            self.drop("RunEnded before RunStarted")
            return
        if r.status not in TERMINAL_STATUSES:
            self.drop(f"RunEnded with status {r.status!r}, not one of {sorted(TERMINAL_STATUSES)}")
            return
        ended_at = utc(r.ended_at)
        reason = _fit(r.reason, RunRow)
        self._update(RunRow, self._run, status=str(r.status), error=r.error, ended_at=ended_at, end_reason=reason)
        self._insert_pending()  # the steps of an episode closed here count towards its steps
        close_open_rows(self._conn, self._run, ended_at, str(r.status).lower())
        self.commit()  # how a run ended must not wait for a timer

    def _insert(self, model: type[Base], **values: Any) -> int:
        # One statement a table, its values bound as parameters: SQLAlchemy compiles it
        # once, where a statement built with .values() costs a cache lookup of its own
        # (4 times the time, a quarter of a millisecond an episode, measured here).
        statement = self._inserts.get(model)
        if statement is None:
            statement = self._inserts[model] = insert(table(model))
        key = self.patience.run(self._conn, lambda: self._conn.execute(statement, values)).inserted_primary_key
        assert key is not None
        self._touch()
        return int(key[0])

    def _update(self, model: type[Base], row_id: int, **values: Any) -> None:
        statement = self._updates.get((model, *values))
        if statement is None:
            rows = table(model)
            statement = (
                update(rows)
                .where(rows.c.id == bindparam("row_id"))
                .values({name: bindparam(f"v_{name}") for name in values})  # insert() reserves the column names
            )
            self._updates[(model, *values)] = statement
        parameters = {f"v_{name}": value for name, value in values.items()}
        parameters["row_id"] = row_id
        self.patience.run(self._conn, lambda: self._conn.execute(statement, parameters))
        self._touch()

    def _touch(self) -> None:
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()

    # -- transactions --------------------------------------------------------------------

    def commit(self) -> None:
        """Insert the pending steps and actions and commit the transaction. Raises
        :class:`arl.store.guard.StoreFileGone` when the store's file is no longer the one
        written to (nothing is committed then), a database error when the commit fails."""
        if self.dirty_since is None:
            return
        if self._store_file is not None:
            self._store_file.check()
        self._insert_pending()
        self._conn.commit()
        if self._after_commit is not None:
            self._after_commit()
        for name, added in self._uncommitted.items():
            self.counts[name] += added
        self._uncommitted = dict.fromkeys(COUNTED, 0)
        self.pending_rows = 0
        self.dirty_since = None
        self.run_id = self._run

    def _insert_pending(self) -> None:
        """Insert the buffered steps and actions into the open transaction; the buffer is
        emptied once both went in (a busy retry inserts both again)."""
        if not (self._env_rows or self._action_rows or self._metric_rows):
            return
        steps, actions, metrics = self.patience.run(self._conn, self._insert_rows)
        self._uncommitted["environment_steps"] += steps
        self._uncommitted["agent_actions"] += actions
        self._uncommitted["metrics"] += metrics
        self._env_rows = []
        self._action_rows = []
        self._metric_rows = []

    def _insert_rows(self) -> tuple[int, int, int]:
        return (
            self._insert_batch(self._env_insert, self._env_rows, "an environment step"),
            self._insert_batch(self._action_insert, self._action_rows, "an agent action"),
            self._insert_batch(self._metric_insert, self._metric_rows, "a metric"),
        )

    def _insert_batch(self, bulk: BulkInsert, rows: list[tuple[Any, ...]], what: str) -> int:
        """Insert ``rows``; returns how many went in. Under savepoints (PostgreSQL), a
        batch the database refuses for a value in it goes in again row by row, and the
        rows it refuses are dropped and counted."""
        if not rows:
            return 0
        if not self._savepoints:
            bulk.execute(self._conn, rows)
            return len(rows)
        try:
            with self._conn.begin_nested():
                bulk.execute(self._conn, rows)
        except DataError:  # a value in the batch was refused: find it, row by row
            return self._insert_one_by_one(bulk, rows, what)
        return len(rows)

    def _insert_one_by_one(self, bulk: BulkInsert, rows: list[tuple[Any, ...]], what: str) -> int:
        kept = 0
        for row in rows:
            try:
                with self._conn.begin_nested():
                    bulk.execute(self._conn, [row])
                kept += 1
            except DataError as exc:
                self.drop(f"{what} the database refused: {short_error(exc)}")
        return kept


def _call(handler: Callable[[Any], None], record: Any) -> None:
    """``handler(record)``; a value SQLAlchemy could not turn into a parameter (a JSON
    detail nested too deep) becomes a TypeError: nothing reached the database. The
    database's own errors propagate."""
    try:
        handler(record)
    except StatementError as exc:
        if isinstance(exc, DBAPIError) or not isinstance(exc.orig, _BAD_RECORD):
            raise
        raise TypeError(f"{type(record).__name__} holds a value that cannot be stored: {exc.orig}") from exc


def _integer(value: Any) -> int:
    """An integer of a record, not a bool or a float that happens to be whole."""
    if type(value) is not int:
        raise TypeError(f"{value!r} is not an integer")
    return value


def _finite_or_none(value: Any) -> float | None:
    """A record's float, None where it is not finite (the column is NULL then, as JSON
    makes NaN null); a value that is no number at all makes the record malformed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{value!r:.100} is not a number")
    number = float(value)
    return number if math.isfinite(number) else None


def _metric(value: Any) -> tuple[int | None, str, int, float, Any]:
    """``[worker | None, name, step, value, time]`` as the row's (worker, name, step, value, time)."""
    if type(value) is not list or len(value) != 5:
        raise ValueError(f"{value!r:.200} is not [worker, name, step, value, time]")
    worker, name, step, number, at = value
    if type(name) is not str or not 0 < len(name) <= METRIC_NAME_LENGTH:
        raise ValueError(f"the name {name!r:.100} is not 1 to {METRIC_NAME_LENGTH} characters")
    if type(number) not in (int, float) or not math.isfinite(number):
        raise ValueError(f"metric {name!r}: {number!r:.100} is not a finite number")
    return None if worker is None else _integer(worker), name, _integer(step), float(number), utc(at)


def _fit(reason: str | None, model: type[Any]) -> str | None:
    """An end reason cut to its column's length: a condition's reason is its author's
    text, and PostgreSQL refuses (SQLite keeps) a longer one, which would fail the run."""
    length = model.__table__.c.end_reason.type.length
    if reason is None or len(reason) <= length:
        return reason
    return reason[: length - 3] + "..."
