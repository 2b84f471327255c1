"""cron monitors: declared schedules that check-ins and the sweeper work against

Revision ID: 0002_cron_monitors
Revises: 0001
Create Date: 2026-12-05 19:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_cron_monitors"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cron_monitors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("job_type", sa.String(length=128), nullable=False),
        sa.Column("cron", sa.String(length=256), nullable=True),
        sa.Column("interval_seconds", sa.BigInteger(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("grace_seconds", sa.BigInteger(), nullable=False),
        sa.Column("max_runtime_seconds", sa.BigInteger(), nullable=True),
        sa.Column("failure_tolerance", sa.SmallInteger(), nullable=False),
        sa.Column("owner_service", sa.String(length=128), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    with op.batch_alter_table("cron_monitors", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cron_monitors_enabled_next", ["enabled", "next_expected_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cron_monitors", schema=None) as batch_op:
        batch_op.drop_index("ix_cron_monitors_enabled_next")
    op.drop_table("cron_monitors")
