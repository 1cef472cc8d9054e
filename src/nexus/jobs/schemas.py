"""Shapes of the job endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from nexus.api.validation import RequestModel
from nexus.jobs.models import Job


class JobError(BaseModel):
    type: str
    message: str


class JobOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str
    attempts: int
    reason: str | None
    error: JobError | None
    result: Any
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        error = None
        if job.error_type:
            error = JobError(type=job.error_type, message=job.error_message or "")
        return cls(
            id=job.id,
            name=job.name,
            status=job.status,
            attempts=job.attempts,
            reason=job.reason,
            error=error,
            result=job.result,
            created_at=job.created_at,
            started_at=job.started_at,
            ended_at=job.ended_at,
        )


class CanaryIn(RequestModel):
    seconds: float = Field(ge=0, le=300)
