"""Durable jobs: enqueue inside a transaction, deliver after commit, record every outcome.

``enqueue`` writes the ``jobs`` row in the caller's transaction and hands
the job to RQ only once that transaction commits (``after_commit``): a job
never runs before the data it needs is visible, and a rolled-back
transaction delivers nothing. RQ's job id is the row id, so a row is
delivered as one RQ job however often delivery is attempted. If Redis cannot
be reached at commit, the row stays ``pending`` for the relay to deliver.

The worker reports through ``mark_started`` and ``mark_outcome``; status is
answered from the row, so it outlives RQ's TTLs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue
from rq.job import JobStatus as RQJobStatus
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from nexus.infrastructure.database import after_commit
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import Queues
from nexus.jobs import registry
from nexus.jobs.models import FailureReason, Job, JobStatus

log = get_logger(__name__)
# A job's result is kept in its row when it is small; larger ones are dropped.
MAX_RESULT_BYTES = 16_384
MAX_ERROR_MESSAGE = 500


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    *,
    session: Session,
    queues: Queues,
    sessions: sessionmaker[Session],
    name: str,
    arguments: dict[str, Any] | None = None,
    enqueued_by: uuid.UUID | None = None,
    request_id: str | None = None,
    delay: timedelta | None = None,
) -> Job:
    """Record job ``name`` in the caller's transaction; deliver it once that commits."""
    job_type = registry.get(name)
    arguments = arguments or {}
    json.dumps(arguments)  # fail now, in the caller, not later in the relay
    row = Job(
        name=name,
        arguments=arguments,
        queue=_queue_for(queues, job_type).name,
        status=JobStatus.PENDING,
        enqueued_by=enqueued_by,
        request_id=request_id,
        run_at=_now() + delay if delay else None,
    )
    session.add(row)
    session.flush()
    job_id = row.id
    after_commit(session, lambda: deliver(job_id, queues=queues, sessions=sessions))
    return row


def _queue_for(queues: Queues, job_type: registry.JobType) -> Queue:
    queue: Queue = getattr(queues, job_type.priority)
    return queue


def deliver(job_id: uuid.UUID, *, queues: Queues, sessions: sessionmaker[Session]) -> bool:
    """Hand a pending row to RQ; ``False`` (row left pending) when Redis is unreachable.

    The row stays locked while RQ takes the job, so a worker that starts it
    at once waits to mark it started until this marks it queued.
    """
    try:
        with sessions() as session, session.begin():
            row = session.scalar(
                select(Job)
                .where(Job.id == job_id, Job.status == JobStatus.PENDING)
                .with_for_update()
            )
            if row is None:
                return True  # delivered already, or canceled
            _hand_to_rq(row, queues)
    except RedisError as exc:
        log.warning("jobs.delivery_deferred", job_id=str(job_id), error=str(exc))
        return False
    return True


def _hand_to_rq(row: Job, queues: Queues) -> None:
    job_type = registry.get(row.name)
    queue = _queue_for(queues, job_type)
    options: dict[str, Any] = {
        "kwargs": row.arguments,
        "job_id": str(row.id),
        "timeout": job_type.timeout,
        "result_ttl": job_type.result_ttl,
        "retry": job_type.retry(),
        "meta": {"request_id": row.request_id, "user_id": str(row.enqueued_by or "")},
    }
    if row.run_at is not None and row.run_at > _now():
        # RQ's scheduler (run by workers) moves it to the queue when due.
        job = queue.create_job(job_type.import_path, status=RQJobStatus.SCHEDULED, **options)
        queue.schedule_job(job, row.run_at)
        row.status = JobStatus.SCHEDULED
    else:
        queue.enqueue_call(job_type.import_path, **options)
        row.status = JobStatus.QUEUED
    row.enqueued_at = _now()


def mark_started(session: Session, job_id: str) -> None:
    """The worker began an attempt."""
    session.execute(
        update(Job)
        .where(Job.id == _uuid(job_id))
        .values(status=JobStatus.STARTED, started_at=_now(), attempts=Job.attempts + 1)
    )


def mark_outcome(
    session: Session,
    job_id: str,
    *,
    status: JobStatus,
    result: Any = None,
    exc_string: str | None = None,
    timed_out: bool = False,
) -> None:
    """How an attempt ended: finished, failed, or waiting for a retry."""
    values: dict[str, Any] = {"status": status}
    if status in (JobStatus.FINISHED, JobStatus.FAILED):
        values["ended_at"] = _now()
    if status == JobStatus.FINISHED:
        values |= {
            "result": _small(result),
            "reason": None,
            "error_type": None,
            "error_message": None,
        }
    if exc_string:
        error_type, error_message = _error(exc_string)
        values |= {
            "reason": FailureReason.TIMEOUT if timed_out else FailureReason.ERROR,
            "error_type": error_type,
            "error_message": error_message,
        }
    session.execute(update(Job).where(Job.id == _uuid(job_id)).values(**values))


def _uuid(job_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        return None  # an RQ job of ours that has no row (e.g. ping)


def _small(result: Any) -> Any:
    try:
        encoded = json.dumps(result)
    except (TypeError, ValueError):
        return None
    return result if len(encoded) <= MAX_RESULT_BYTES else None


def _error(exc_string: str) -> tuple[str, str]:
    """Exception type and message from a traceback's last line; the traceback is not kept."""
    last = exc_string.strip().splitlines()[-1] if exc_string.strip() else "Error"
    error_type, _, message = last.partition(":")
    return error_type.strip()[:200], message.strip()[:MAX_ERROR_MESSAGE]


def get_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)
