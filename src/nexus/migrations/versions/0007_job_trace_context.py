"""Jobs carry the trace context of the request that enqueued them.

Revision ID: 0007
Revises: 0006

``jobs.trace_parent``: the W3C ``traceparent`` of the span that enqueued
the job (null when tracing is off), so the job's spans join that trace
wherever and whenever it runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trace_parent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "trace_parent")
