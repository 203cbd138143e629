"""A swept run's values, ``experiment_runs.swept`` (``{"key.path": value}``, NULL for a
run no ``--sweep`` made), and what an environment said about each step,
``environment_steps.info`` (gymnasium's ``info``, JSON-safe and size-capped; NULL where
none was given, as for every step stored before).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _json(column: str) -> sa.Column[object]:
    # Nullable, no default: SQLite adds it in place, PostgreSQL without rewriting the table.
    return sa.Column(column, sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("experiment_runs") as batch:
        batch.add_column(_json("swept"))
    with op.batch_alter_table("environment_steps") as batch:
        batch.add_column(_json("info"))


def downgrade() -> None:
    # Not batch mode: on SQLite that copies the table, and dropping the old experiment_runs
    # would cascade to every phase, episode and step of every run. SQLite (3.35+) and
    # PostgreSQL both drop a column in place.
    op.drop_column("environment_steps", "info")
    op.drop_column("experiment_runs", "swept")
