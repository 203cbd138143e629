"""The first schema: runs, phases, episodes, environment steps, agent actions, brain
checkpoints and events.

Types are spelled out here rather than imported from :mod:`arl.store.schema`, so this
revision stays what it was when the schema moves on.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _parent(column: str, table: str, name: str) -> list[SchemaItem]:
    return [
        sa.Column(column, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            [column], [f"{table}.id"], name=op.f(f"fk_{name}_{column}_{table}"), ondelete="CASCADE"
        ),
    ]


def _json(column: str) -> sa.Column[object]:
    return sa.Column(column, sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False)


def _time(column: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(column, sa.DateTime(timezone=True), nullable=nullable)


def _string(column: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(column, sa.String(length=length), nullable=nullable)


def _table(name: str, *items: SchemaItem, indexed: tuple[str, ...] = ()) -> None:
    op.create_table(name, _id(), *items, sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")))
    for column in indexed:
        op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)


def upgrade() -> None:
    _table(
        "experiment_runs",
        _string("uid", 255),
        _string("experiment_uid", 255, nullable=True),
        _string("status", 16),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        _json("document"),
        _string("arl_version", 64),
        _string("host", 255),
        sa.Column("pid", sa.Integer(), nullable=True),
        _time("pid_started_at", nullable=True),
        _time("started_at"),
        _time("ended_at", nullable=True),
        _string("end_reason", 64, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        indexed=("uid",),
    )
    _table(
        "events",
        *_parent("run_id", "experiment_runs", "events"),
        _time("at"),
        _string("kind", 64),
        _json("detail"),
        indexed=("run_id",),
    )
    _table(
        "phases",
        *_parent("run_id", "experiment_runs", "phases"),
        sa.Column("index", sa.Integer(), nullable=False),
        _string("name", 255),
        _string("mode", 32),
        _time("started_at"),
        _time("ended_at", nullable=True),
        _string("end_reason", 64, nullable=True),
        sa.UniqueConstraint("run_id", "index", name=op.f("uq_phases_run_id_index")),
        indexed=("run_id",),
    )
    _table(
        "brain_checkpoints",
        *_parent("run_id", "experiment_runs", "brain_checkpoints"),
        *_parent("phase_id", "phases", "brain_checkpoints"),
        _string("agent", 255),
        sa.Column("path", sa.Text(), nullable=False),
        _string("sha256", 64),
        _time("saved_at"),
        indexed=("run_id", "phase_id"),
    )
    _table(
        "episodes",
        *_parent("phase_id", "phases", "episodes"),
        sa.Column("worker", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        _time("started_at"),
        _time("ended_at", nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        _string("end_reason", 32, nullable=True),
        sa.UniqueConstraint("phase_id", "worker", "index", name=op.f("uq_episodes_phase_id_worker_index")),
        indexed=("phase_id",),
    )
    _table(
        "agent_actions",
        *_parent("episode_id", "episodes", "agent_actions"),
        sa.Column("step", sa.Integer(), nullable=False),
        _string("agent", 255),
        _json("inputs"),
        _json("setpoints"),
        _json("rewards"),
        sa.Column("objective", sa.Float(), nullable=False),
        indexed=("episode_id",),
    )
    _table(
        "environment_steps",
        *_parent("episode_id", "episodes", "environment_steps"),
        sa.Column("step", sa.Integer(), nullable=False),
        _string("env_uid", 255),
        _json("sensors"),
        _json("rewards"),
        sa.Column("terminated", sa.Boolean(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        indexed=("episode_id",),
    )


def downgrade() -> None:
    for table in (
        "environment_steps", "agent_actions", "episodes", "brain_checkpoints", "phases", "events", "experiment_runs",
    ):  # fmt: skip
        op.drop_table(table)
