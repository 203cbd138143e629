"""The SQL schema of the store: one row per run, phase, episode, environment step, agent
action, saved brain, event and logged metric.

Rows name their parents by database id; the writer maps the natural keys of the records
(phase index, worker, episode index, step) to those ids. Every timestamp is an aware UTC
``datetime``; every JSON column is plain JSON (JSONB on PostgreSQL), never a pickle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from arl.api import METRIC_NAME_LENGTH
from arl.status import RunStatus as RunStatus  # the store keeps the run status words of arl.status

JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""Plain JSON everywhere; JSONB on PostgreSQL so stored sensors can be indexed and queried."""

IdType: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids: a long run stores billions of steps. SQLite needs INTEGER for its rowid alias."""


TERMINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED})
UNFINISHED_STATUSES = frozenset({RunStatus.SCHEDULED, RunStatus.RUNNING})


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite keeps no zone, so a plain ``DateTime`` would hand naive values back and mix
    local and UTC times. This stores UTC and gives back aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value}: the store keeps aware UTC datetimes")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(epoch_seconds: float) -> datetime:
    """The aware UTC datetime of a record's float epoch seconds."""
    return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraints named alike on every backend, so a migration can name what it alters."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSONType, dict[str, Any] | None: JSONType}


def _parent(target: str, *, nullable: bool = False) -> Mapped[Any]:
    """A foreign key column, indexed: every query walks from a run down to its steps."""
    return mapped_column(IdType, ForeignKey(target, ondelete="CASCADE"), index=True, nullable=nullable)


class RunRow(Base):
    """One execution of an experiment file. ``uid`` repeats when a file runs again."""

    __tablename__ = "experiment_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), index=True)
    experiment_uid: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    document: Mapped[dict[str, Any]]
    arl_version: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    # The writer's process: with ``host``, how a later opening of the store tells a run
    # whose process died (kill -9) from one still going. The start time guards against a
    # reused pid.
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[datetime | None]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))  # "completed", or the condition's reason
    error: Mapped[str | None] = mapped_column(Text)
    # A --sweep's values this run was made with ({"key.path": value}); NULL for no sweep.
    swept: Mapped[dict[str, Any] | None]


class PhaseRow(Base):
    __tablename__ = "phases"
    __table_args__ = (UniqueConstraint("run_id", "index"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = _parent("experiment_runs.id")
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))


class EpisodeRow(Base):
    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("phase_id", "worker", "index"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    phase_id: Mapped[int] = _parent("phases.id")
    worker: Mapped[int] = mapped_column(Integer)
    index: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    steps: Mapped[int | None] = mapped_column(Integer)
    end_reason: Mapped[str | None] = mapped_column(String(32))


class EnvironmentStepRow(Base):
    __tablename__ = "environment_steps"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    episode_id: Mapped[int] = _parent("episodes.id")
    step: Mapped[int] = mapped_column(Integer)
    env_uid: Mapped[str] = mapped_column(String(255))
    sensors: Mapped[dict[str, Any]]
    rewards: Mapped[dict[str, Any]]
    terminated: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    # The run's scaled clock (arl.time.time(): seconds since 1970 as time_scale counts
    # them, pauses left out) at the step; NULL where the sender gave none.
    sim_time: Mapped[float | None] = mapped_column(Float)
    # What the environment said of the step (gymnasium's ``info``), JSON-safe and capped;
    # NULL where it said nothing.
    info: Mapped[dict[str, Any] | None]


class AgentActionRow(Base):
    __tablename__ = "agent_actions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    episode_id: Mapped[int] = _parent("episodes.id")
    step: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(255))
    inputs: Mapped[dict[str, Any]]
    setpoints: Mapped[dict[str, Any]]
    rewards: Mapped[dict[str, Any]]
    objective: Mapped[float] = mapped_column(Float)
    # The version of the policy that chose the setpoints, where the muscle gave one.
    policy_version: Mapped[int | None] = mapped_column(BigInteger)


class CheckpointRow(Base):
    """A brain saved at the end of a phase: where it lies and its digest."""

    __tablename__ = "brain_checkpoints"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = _parent("experiment_runs.id")
    phase_id: Mapped[int] = _parent("phases.id")
    agent: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[datetime]


class EventRow(Base):
    """Something noteworthy in a run that is not a step: a restart, a warning, a signal."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = _parent("experiment_runs.id")
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class MetricRow(Base):
    """A value a brain or muscle logged (``log_metric``): the brain's have no ``worker``."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = _parent("experiment_runs.id")
    phase_id: Mapped[int] = _parent("phases.id")
    agent: Mapped[str] = mapped_column(String(255))
    worker: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(METRIC_NAME_LENGTH))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime]
