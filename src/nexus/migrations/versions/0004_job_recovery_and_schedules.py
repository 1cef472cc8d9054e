"""Jobs: attempt budgets, worker heartbeats and one-active-job uniqueness.

``max_attempts`` is how many runs a job may have (an admin retry raises it);
``heartbeat_at`` and ``worker`` let the reconciler tell a running attempt from
one whose worker was killed; ``unique_key`` is unique among active jobs only
(pending, queued, scheduled, started), so a job type declared ``unique`` has
at most one of each set of arguments waiting or running.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE jobs
            ADD COLUMN max_attempts integer NOT NULL DEFAULT 1,
            ADD COLUMN heartbeat_at timestamptz,
            ADD COLUMN worker text,
            ADD COLUMN unique_key text,
            ADD CONSTRAINT ck_jobs_max_attempts CHECK (max_attempts >= 1);
        CREATE UNIQUE INDEX uq_jobs_active_unique_key ON jobs (unique_key)
            WHERE status IN ('pending', 'queued', 'scheduled', 'started');
        -- The reconciler's question: which started attempts stopped heartbeating?
        CREATE INDEX ix_jobs_started_heartbeat ON jobs (heartbeat_at) WHERE status = 'started';
        -- The retention purge's: which ended jobs are old?
        CREATE INDEX ix_jobs_ended_at ON jobs (ended_at)
            WHERE status IN ('finished', 'failed', 'canceled');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX ix_jobs_ended_at;
        DROP INDEX ix_jobs_started_heartbeat;
        DROP INDEX uq_jobs_active_unique_key;
        ALTER TABLE jobs
            DROP CONSTRAINT ck_jobs_max_attempts,
            DROP COLUMN unique_key,
            DROP COLUMN worker,
            DROP COLUMN heartbeat_at,
            DROP COLUMN max_attempts;
        """
    )
