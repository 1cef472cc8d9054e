"""Jobs: the durable record of every background job, answered after RQ forgets it.

The row is written in the enqueuing transaction; RQ's job id is the row id.
``dedupe_key`` is unique, so one (job name, scheduled time) tick runs once
however many schedulers produce it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            name text NOT NULL,
            arguments jsonb NOT NULL DEFAULT '{}'::jsonb,
            queue text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            reason text,
            error_type text,
            error_message text,
            enqueued_by uuid,
            request_id text,
            created_at timestamptz NOT NULL DEFAULT now(),
            enqueued_at timestamptz,
            started_at timestamptz,
            ended_at timestamptz,
            run_at timestamptz,
            result jsonb,
            dedupe_key text,
            CONSTRAINT pk_jobs PRIMARY KEY (id),
            CONSTRAINT uq_jobs_dedupe_key UNIQUE (dedupe_key),
            CONSTRAINT ck_jobs_status CHECK (status IN
                ('pending', 'queued', 'started', 'finished', 'failed', 'canceled', 'scheduled')),
            CONSTRAINT ck_jobs_reason CHECK (reason IN ('error', 'timeout', 'abandoned', 'lost')),
            CONSTRAINT ck_jobs_attempts CHECK (attempts >= 0)
        );
        CREATE INDEX ix_jobs_status_created_at ON jobs (status, created_at);
        CREATE INDEX ix_jobs_enqueued_by_created_at ON jobs (enqueued_by, created_at);
        CREATE INDEX ix_jobs_name_created_at ON jobs (name, created_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE jobs")
