"""notification delivery bookkeeping

What the notifier needs to deliver each planned message exactly once and retry failures with
back-off: the plan a row belongs to (identity + expiry, so a renewal cancels the old plan), when
it was due, when it was last attempted and when to try again, and the subject for the history.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("plan_key", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(length=300), nullable=False, server_default=""))
        batch.create_index("ix_notifications_plan_key", ["plan_key"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_plan_key")
        for column in ("subject", "next_attempt_at", "last_attempt_at", "due_at", "plan_key"):
            batch.drop_column(column)
