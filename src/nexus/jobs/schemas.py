"""Shapes of the job endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus.api.envelope import PageQuery
from nexus.api.validation import RequestModel
from nexus.jobs.models import Job

StatusName = Literal["pending", "queued", "scheduled", "started", "finished", "failed", "canceled"]


class JobError(BaseModel):
    type: str
    message: str


class JobOut(BaseModel):
    """A job as its owner sees it."""

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
        return cls(**_common(job))


class AdminJobOut(JobOut):
    """A job as an admin sees it: where it runs, who asked, and with what."""

    queue: str
    arguments: dict[str, Any]
    max_attempts: int
    enqueued_by: uuid.UUID | None
    request_id: str | None
    worker: str | None
    enqueued_at: datetime | None
    run_at: datetime | None
    heartbeat_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> AdminJobOut:
        return cls(
            **_common(job),
            queue=job.queue,
            arguments=job.arguments,
            max_attempts=job.max_attempts,
            enqueued_by=job.enqueued_by,
            request_id=job.request_id,
            worker=job.worker,
            enqueued_at=job.enqueued_at,
            run_at=job.run_at,
            heartbeat_at=job.heartbeat_at,
        )


def _common(job: Job) -> dict[str, Any]:
    error = None
    if job.error_type:
        error = JobError(type=job.error_type, message=job.error_message or "")
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "attempts": job.attempts,
        "reason": job.reason,
        "error": error,
        "result": job.result,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
    }


class JobQuery(PageQuery):
    status: StatusName | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100)


class CanaryIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"seconds": 0.5}]})

    seconds: float = Field(ge=0, le=300, description="How long the job sleeps.")


class QueueOut(BaseModel):
    """A queue: RQ's backlog beside the rows waiting for it."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    priority: Literal["high", "default", "low"]
    waiting_in_rq: int = Field(description="Jobs in RQ's list, waiting for a worker.")
    rows_waiting: int = Field(description="Rows pending or queued: accepted, not started.")
    rows_scheduled: int = Field(description="Rows waiting for their time (delays, retries).")
    rows_running: int = Field(description="Rows a worker has started.")
    oldest_waiting_seconds: float | None = Field(
        description="Age of the oldest waiting row; null when none waits."
    )


class WorkerOut(BaseModel):
    """A worker RQ knows of, and what it is doing."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    hostname: str | None
    pid: int | None
    state: str = Field(description="busy, idle, suspended or started.")
    queues: list[str]
    current_job_id: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful_jobs: int
    failed_jobs: int
