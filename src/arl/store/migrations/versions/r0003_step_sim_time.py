"""The scaled time of each step: ``environment_steps.sim_time``, the run's scaled clock
(``arl.time.time()``) at the step, NULL where none was given (every step stored before).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A nullable column without a default: SQLite adds it in place, PostgreSQL without
    # rewriting the table, however many steps it holds.
    with op.batch_alter_table("environment_steps") as batch:
        batch.add_column(sa.Column("sim_time", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environment_steps") as batch:
        batch.drop_column("sim_time")
