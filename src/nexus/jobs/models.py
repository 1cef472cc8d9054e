"""The ``jobs`` table: one row per accepted job, its status outliving RQ's TTLs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from nexus.infrastructure.database import Base


class JobStatus(enum.StrEnum):
    PENDING = "pending"  # committed, not yet handed to RQ
    QUEUED = "queued"
    SCHEDULED = "scheduled"  # delayed, or waiting for a retry
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


class FailureReason(enum.StrEnum):
    ERROR = "error"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"
    LOST = "lost"


class Job(Base):
    """Every constraint and index of ``jobs`` (migrations 0003, 0004)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        CheckConstraint(
            "status IN ('pending', 'queued', 'started', 'finished', 'failed', 'canceled',"
            " 'scheduled')",
            name="status",
        ),
        CheckConstraint("reason IN ('error', 'timeout', 'abandoned', 'lost')", name="reason"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("max_attempts >= 1", name="max_attempts"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_enqueued_by_created_at", "enqueued_by", "created_at"),
        Index("ix_jobs_name_created_at", "name", "created_at"),
        # One waiting or running job per unique key (a ``unique`` job type).
        Index(
            "uq_jobs_active_unique_key",
            "unique_key",
            unique=True,
            postgresql_where=text("status IN ('pending', 'queued', 'scheduled', 'started')"),
        ),
        # The reconciler's question: which started attempts stopped heartbeating?
        Index(
            "ix_jobs_started_heartbeat",
            "heartbeat_at",
            postgresql_where=text("status = 'started'"),
        ),
        # The retention purge's: which ended jobs are old?
        Index(
            "ix_jobs_ended_at",
            "ended_at",
            postgresql_where=text("status IN ('finished', 'failed', 'canceled')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    queue: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=JobStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    reason: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    enqueued_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    request_id: Mapped[str | None] = mapped_column(Text)
    # The W3C traceparent of the span that enqueued it (tracing on), for the
    # job's spans to join that trace.
    trace_parent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    run_at: Mapped[datetime | None]
    result: Mapped[Any | None] = mapped_column(JSONB)
    # Unique for ever: a schedule tick, or a caller's idempotency key.
    dedupe_key: Mapped[str | None] = mapped_column(Text)
    # Unique among active jobs only: a ``unique`` job type's name and arguments.
    unique_key: Mapped[str | None] = mapped_column(Text)
    # Runs allowed in all; an admin retry raises it.
    max_attempts: Mapped[int] = mapped_column(server_default=text("1"))
    # The running attempt's worker and its latest sign of life.
    worker: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None]


ACTIVE_STATUSES = frozenset(
    {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED}
)
ENDED_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})
