"""Metrics and policy versions: the ``metrics`` table (what brains and muscles log with
``log_metric``) and ``agent_actions.policy_version`` (the version of the policy that
chose an action, NULL where the muscle gave none: every action stored before).

Types are spelled out here rather than imported from :mod:`arl.store.schema`, so this
revision stays what it was when the schema moves on.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _id_type() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _parent(column: str, table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column(column, _id_type(), nullable=False),
        sa.ForeignKeyConstraint(
            [column], [f"{table}.id"], name=op.f(f"fk_metrics_{column}_{table}"), ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "metrics",
        sa.Column("id", _id_type(), nullable=False),
        *_parent("run_id", "experiment_runs"),
        *_parent("phase_id", "phases"),
        sa.Column("agent", sa.String(length=255), nullable=False),
        sa.Column("worker", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
    )
    for column in ("run_id", "phase_id"):
        op.create_index(op.f(f"ix_metrics_{column}"), "metrics", [column], unique=False)
    # A nullable column: SQLite adds it in place, no copy of the table.
    with op.batch_alter_table("agent_actions") as batch:
        batch.add_column(sa.Column("policy_version", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_actions") as batch:
        batch.drop_column("policy_version")
    for column in ("phase_id", "run_id"):
        op.drop_index(op.f(f"ix_metrics_{column}"), table_name="metrics")
    op.drop_table("metrics")
