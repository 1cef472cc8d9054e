"""The ``jobs`` table: one row per accepted job, its status outliving RQ's TTLs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Text, func, text
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
    __tablename__ = "jobs"

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
