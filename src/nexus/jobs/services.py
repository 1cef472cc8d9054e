"""Durable jobs: enqueue inside a transaction, deliver after commit, record every attempt.

``enqueue`` writes the ``jobs`` row in the caller's transaction and hands
the job to RQ only once that transaction commits (``after_commit``): a job
never runs before the data it needs is visible, and a rolled-back
transaction delivers nothing. RQ's job id is the row id, so a row is
delivered as one RQ job however often delivery is attempted. If Redis cannot
be reached at commit, the row stays ``pending`` for the relay to deliver.

The worker reports through ``start_attempt``, ``heartbeat`` and
``mark_outcome``; each write names the attempt it belongs to, so a late
report from an attempt the reconciler already gave up on changes nothing.
Status is answered from the row, so it outlives RQ's TTLs. Admins act on
rows through ``cancel`` and ``retry``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq import Worker as RQWorker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQJobStatus
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nexus.errors import Conflict, NotFound
from nexus.infrastructure import context, metrics, tracing
from nexus.infrastructure.database import after_commit, get_database
from nexus.infrastructure.keyset import Keyset
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import SERIALIZER, Queues, get_queues
from nexus.jobs import registry
from nexus.jobs.models import ACTIVE_STATUSES, ENDED_STATUSES, FailureReason, Job, JobStatus

log = get_logger(__name__)
# A job's result is kept in its row when it is small; larger ones are dropped.
MAX_RESULT_BYTES = 16_384
MAX_ERROR_MESSAGE = 500
# What RQ writes when a work horse dies under it (SIGKILL, the OOM killer).
HORSE_KILLED = "Work-horse terminated unexpectedly"


class JobNotFound(NotFound):
    """No job with this id."""


class JobStateError(Conflict):
    """The job is not in a state that allows this (cancel an ended job, retry a running one)."""


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    session: Session,
    name: str,
    /,
    *,
    delay: timedelta | None = None,
    dedupe_key: str | None = None,
    **arguments: Any,
) -> Job:
    """Record job ``name`` with ``arguments`` in the caller's transaction; deliver it on commit.

    Inside a request, job or command::

        enqueue(session, "widgets.recount", widget_id=str(widget.id))

    The queues and session factory are the current app's; the acting user and
    request id are the current request's (or, inside a job, those of the
    request that enqueued it). ``delay`` and ``dedupe_key`` are options, so
    they cannot be argument names. Outside an app context, use
    :func:`enqueue_with`.
    """
    return enqueue_with(
        session=session,
        queues=get_queues(),
        sessions=get_database().sessionmaker,
        name=name,
        arguments=arguments,
        enqueued_by=context.user_id(),
        request_id=context.request_id(),
        delay=delay,
        dedupe_key=dedupe_key,
    )


def enqueue_with(
    *,
    session: Session,
    queues: Queues,
    sessions: sessionmaker[Session],
    name: str,
    arguments: dict[str, Any] | None = None,
    enqueued_by: uuid.UUID | None = None,
    request_id: str | None = None,
    delay: timedelta | None = None,
    dedupe_key: str | None = None,
) -> Job:
    """:func:`enqueue` with every piece of plumbing given: for code outside an app context.

    With a ``dedupe_key`` (a schedule tick, a client's idempotency key) or a
    job type declared ``unique``, an existing job with the same key is
    returned instead and nothing new is delivered.
    """
    return enqueue_or_find(
        session=session,
        queues=queues,
        sessions=sessions,
        name=name,
        arguments=arguments,
        enqueued_by=enqueued_by,
        request_id=request_id,
        delay=delay,
        dedupe_key=dedupe_key,
    )[0]


def enqueue_or_find(
    *,
    session: Session,
    queues: Queues,
    sessions: sessionmaker[Session],
    name: str,
    arguments: dict[str, Any] | None = None,
    enqueued_by: uuid.UUID | None = None,
    request_id: str | None = None,
    delay: timedelta | None = None,
    dedupe_key: str | None = None,
) -> tuple[Job, bool]:
    """``enqueue``, also answering whether the job is new (``False``: an existing one)."""
    job_type = registry.get(name)
    arguments = arguments or {}
    encoded = json.dumps(arguments, sort_keys=True, separators=(",", ":"))  # fails in the caller
    unique_key = None
    if job_type.unique:
        unique_key = f"{name}:{hashlib.sha256(encoded.encode()).hexdigest()}"
    values = {
        "name": name,
        "arguments": arguments,
        "queue": _queue_for(queues, job_type).name,
        "status": JobStatus.PENDING,
        "max_attempts": job_type.max_attempts,
        "enqueued_by": enqueued_by,
        "request_id": request_id,
        "run_at": _now() + delay if delay else None,
        "dedupe_key": dedupe_key,
        "unique_key": unique_key,
        "trace_parent": tracing.current_traceparent(),
    }
    # The existing job may end between our insert and our look-up; then the
    # insert is tried again (a unique key is only held by active jobs).
    for _ in range(3):
        new_id = session.scalar(
            insert(Job).values(**values).on_conflict_do_nothing().returning(Job.id)
        )
        if new_id is not None:
            break
        existing = session.scalar(_existing(dedupe_key, unique_key))
        if existing is not None:
            log.info("jobs.deduplicated", job_id=str(existing.id), job_name=name)
            return existing, False
    else:
        raise JobStateError(f"could not enqueue {name}: its key keeps changing hands")
    job_id: uuid.UUID = new_id
    after_commit(session, lambda: deliver(job_id, queues=queues, sessions=sessions))
    after_commit(session, metrics.JOBS_ENQUEUED.labels(job=name).inc)
    row = session.get(Job, job_id)
    assert row is not None  # noqa: S101 - inserted just above, same transaction
    return row, True


def _existing(dedupe_key: str | None, unique_key: str | None) -> Select[Job]:
    conditions = []
    if dedupe_key is not None:
        conditions.append(Job.dedupe_key == dedupe_key)
    if unique_key is not None:
        conditions.append(and_(Job.unique_key == unique_key, Job.status.in_(ACTIVE_STATUSES)))
    return select(Job).where(or_(*conditions)).limit(1)


def _queue_for(queues: Queues, job_type: registry.JobType) -> Queue:
    queue: Queue = getattr(queues, job_type.priority)
    return queue


def deliver(job_id: uuid.UUID, *, queues: Queues, sessions: sessionmaker[Session]) -> bool:
    """Hand a pending row to RQ (or hold it as ``scheduled`` until its ``run_at``).

    ``False`` (row left pending) when Redis is unreachable.

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
            if row.run_at is not None and row.run_at > _now():
                # Held here, not in RQ's scheduled registry: the relay of any
                # worker delivers it when due, with no scheduler lock to wait for.
                row.status = JobStatus.SCHEDULED
                return True
            try:
                job_type = registry.get(row.name)
            except registry.UnknownJobError:
                # Its code was removed since it was accepted: say so, once.
                row.status, row.reason, row.ended_at = JobStatus.FAILED, FailureReason.ERROR, _now()
                row.error_type, row.error_message = "UnknownJobError", row.name
                log.error("jobs.unknown_type", job_id=str(job_id), job_name=row.name)
                return True
            _hand_to_rq(row, job_type, queues)
    except RedisError as exc:
        log.warning("jobs.delivery_deferred", job_id=str(job_id), error=str(exc))
        return False
    return True


def _hand_to_rq(row: Job, job_type: registry.JobType, queues: Queues) -> None:
    queue = _queue_for(queues, job_type)
    # Anything RQ still holds under this id (an abandoned attempt in its
    # started registry, a failed run an admin retries) would fight the new
    # delivery: RQ's own clean-up would later fail or retry it.
    _forget(str(row.id), queue.connection)
    retries_left = row.max_attempts - row.attempts - 1
    options: dict[str, Any] = {
        "kwargs": row.arguments,
        "job_id": str(row.id),
        "timeout": job_type.timeout,
        "result_ttl": job_type.result_ttl,
        "retry": job_type.retry(
            remaining=retries_left, used=max(0, job_type.retries - retries_left)
        ),
        "meta": {"request_id": row.request_id, "user_id": str(row.enqueued_by or "")},
    }
    queue.enqueue_call(job_type.import_path, **options)
    row.status = JobStatus.QUEUED
    row.run_at = None
    row.enqueued_at = _now()


def _forget(job_id: str, redis: Redis) -> None:
    """Delete RQ's job ``job_id`` and every trace of it (registries, queue lists)."""
    try:
        job = RQJob.fetch(job_id, connection=redis, serializer=SERIALIZER)
    except NoSuchJobError:
        return
    with redis.pipeline() as pipeline:
        job.delete(pipeline=pipeline)
        # A single-queue worker killed mid-dequeue leaves the id here, where
        # RQ's maintenance would later fail whatever job has that id.
        intermediate = Queue(job.origin, connection=redis).intermediate_queue_key
        pipeline.lrem(intermediate, 0, job_id)
        pipeline.execute()


@dataclass(frozen=True)
class Attempt:
    """What a worker may do with the job it dequeued."""

    run: bool
    number: int | None = None  # None: an RQ job without a row (ping), not counted
    status: str | None = None  # why not, when ``run`` is false
    trace_parent: str | None = None  # the enqueuing span, for the job's spans to join


def start_attempt(session: Session, job_id: str, *, worker: str) -> Attempt:
    """The worker is about to run the job: count the attempt, unless it must not run.

    A job that was canceled, has ended, or is running elsewhere (a duplicate
    delivery) is not run again: this is what makes each accepted job run
    once however it reaches a queue.
    """
    row_id = _uuid(job_id)
    if row_id is None:
        return Attempt(run=True)
    started = session.execute(
        update(Job)
        .where(
            Job.id == row_id,
            Job.status.in_([JobStatus.PENDING, JobStatus.QUEUED, JobStatus.SCHEDULED]),
        )
        .values(
            status=JobStatus.STARTED,
            started_at=_now(),
            heartbeat_at=_now(),
            worker=worker,
            attempts=Job.attempts + 1,
        )
        .returning(Job.attempts, Job.trace_parent)
    ).first()
    if started is not None:
        return Attempt(run=True, number=started[0], trace_parent=started[1])
    status = session.scalar(select(Job.status).where(Job.id == row_id))
    return Attempt(run=status is None, status=status)


def heartbeat(session: Session, job_id: str, attempt: int) -> bool:
    """The attempt is still running (written by the worker every few seconds).

    ``False`` when the row no longer wants it to run: it was canceled, or
    the attempt was given up on and replaced.
    """
    changed = session.execute(
        update(Job)
        .where(Job.id == _uuid(job_id), Job.attempts == attempt, Job.status == JobStatus.STARTED)
        .values(heartbeat_at=_now())
        .returning(Job.id)
    ).first()
    return changed is not None


def mark_outcome(
    session: Session,
    job_id: str,
    *,
    attempt: int,
    status: JobStatus,
    result: Any = None,
    exc_string: str | None = None,
    timed_out: bool = False,
    retry_in: int | None = None,
) -> bool:
    """How attempt ``attempt`` ended: finished, failed, or waiting ``retry_in`` s for a retry.

    Changes nothing (and answers ``False``) unless the row is still that
    attempt, running: a canceled job stays canceled, and a worker that was
    presumed dead cannot overwrite the attempt that replaced it.
    """
    values: dict[str, Any] = {"status": status, "heartbeat_at": None}
    if retry_in is not None:
        values["run_at"] = _now() + timedelta(seconds=retry_in)
    if status in ENDED_STATUSES:
        values["ended_at"] = _now()
    if status == JobStatus.FINISHED:
        values |= {
            "result": _small(result),
            "reason": None,
            "error_type": None,
            "error_message": None,
        }
    if exc_string:
        values |= _failure(exc_string, timed_out=timed_out)
    changed = session.execute(
        update(Job)
        .where(Job.id == _uuid(job_id), Job.attempts == attempt, Job.status == JobStatus.STARTED)
        .values(**values)
        .returning(Job.id)
    ).first()
    return changed is not None


def settle_from_rq(session: Session, rq_job: RQJob, *, attempt: int) -> bool:
    """Copy to the row how RQ ended an attempt that its work horse could not report.

    The horse died (SIGKILL, out of memory) or could not reach PostgreSQL;
    RQ has since failed the job, or queued its retry. ``False`` if RQ does
    not know yet either (the job is still ``started`` there, or ``queued``
    without being in any queue).
    """
    status = rq_job.get_status(refresh=True)
    if status == RQJobStatus.FINISHED:
        return mark_outcome(
            session,
            rq_job.id,
            attempt=attempt,
            status=JobStatus.FINISHED,
            result=rq_job.return_value(refresh=True),
        )
    mapped = {
        RQJobStatus.FAILED: JobStatus.FAILED,
        RQJobStatus.SCHEDULED: JobStatus.SCHEDULED,  # a retry after an interval
        RQJobStatus.QUEUED: JobStatus.QUEUED,  # a retry at once
        RQJobStatus.STOPPED: JobStatus.FAILED,
    }.get(status)
    if mapped is None or (
        mapped in (JobStatus.QUEUED, JobStatus.SCHEDULED) and not waiting_in_rq(rq_job)
    ):
        return False
    latest = rq_job.latest_result()
    exc_string = (latest.exc_string if latest is not None else None) or rq_job.exc_info
    return mark_outcome(
        session,
        rq_job.id,
        attempt=attempt,
        status=mapped,
        exc_string=exc_string or "AbandonedJobError: the attempt ended without a report",
        timed_out=bool(exc_string and "JobTimeoutException" in exc_string),
    )


def waiting_in_rq(rq_job: RQJob) -> bool:
    """RQ says queued or scheduled: is the job really in its queue or scheduled registry?

    A worker killed between taking a job and starting it leaves it
    ``queued`` in name only, in no queue, and it would never run.
    """
    queue = Queue(rq_job.origin, connection=rq_job.connection, serializer=SERIALIZER)
    return rq_job.get_position() is not None or rq_job.id in queue.scheduled_job_registry


def abandon(row: Job, *, redis: Redis, retry_wait: int) -> JobStatus:
    """The locked, running ``row`` stopped heartbeating: retry it if it may, else fail it.

    Its traces in RQ are removed, so that RQ's own clean-up does not act on
    the dead attempt later, and the retry is the relay's to deliver when due.
    """
    _forget(str(row.id), redis)
    values = _failure(
        "AbandonedJobError: its worker stopped heartbeating (killed, or lost its node)",
        timed_out=False,
        reason=FailureReason.ABANDONED,
    )
    for key, value in values.items():
        setattr(row, key, value)
    row.heartbeat_at = None
    if row.attempts < row.max_attempts:
        row.status = JobStatus.PENDING
        row.run_at = _now() + timedelta(seconds=retry_wait) if retry_wait else None
        return JobStatus.PENDING
    row.status = JobStatus.FAILED
    row.ended_at = _now()
    return JobStatus.FAILED


def cancel(session: Session, job_id: uuid.UUID, *, redis: Redis) -> Job:
    """Cancel a job that has not ended; a running one is stopped (its work horse killed)."""
    row = _locked(session, job_id)
    if row.status in ENDED_STATUSES:
        raise JobStateError(f"The job has already ended ({row.status}).")
    was_running = row.status == JobStatus.STARTED
    row.status = JobStatus.CANCELED
    row.ended_at = _now()
    row.heartbeat_at = None
    # RQ is told after the commit; if Redis is down then, a worker that
    # dequeues the job later still finds the row canceled and skips it.
    after_commit(session, lambda: _cancel_in_rq(str(job_id), redis, running=was_running))
    return row


def _cancel_in_rq(job_id: str, redis: Redis, *, running: bool) -> None:
    try:
        if running:
            send_stop_job_command(redis, job_id, serializer=SERIALIZER)
        else:
            RQJob.fetch(job_id, connection=redis, serializer=SERIALIZER).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # RQ no longer has it, or already canceled
    except RedisError as exc:
        log.warning("jobs.cancel_not_sent", job_id=job_id, error=str(exc))


def retry(
    session: Session, job_id: uuid.UUID, *, queues: Queues, sessions: sessionmaker[Session]
) -> Job:
    """Run a failed or canceled job again, with its job type's full retry budget."""
    row = _locked(session, job_id)
    if row.status not in (JobStatus.FAILED, JobStatus.CANCELED):
        raise JobStateError(
            f"Only failed or canceled jobs can be retried (this one is {row.status})."
        )
    job_type = registry.get(row.name)
    row.status = JobStatus.PENDING
    row.max_attempts = row.attempts + job_type.max_attempts
    row.run_at = row.ended_at = row.heartbeat_at = None
    row.reason = row.error_type = row.error_message = row.result = None
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # A unique job type: another job with these arguments is active.
        raise JobStateError("An identical job is already waiting or running.") from None
    after_commit(session, lambda: deliver(job_id, queues=queues, sessions=sessions))
    return row


def _locked(session: Session, job_id: uuid.UUID) -> Job:
    row = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if row is None:
        raise JobNotFound("No such job.")
    return row


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


def _failure(
    exc_string: str, *, timed_out: bool, reason: FailureReason | None = None
) -> dict[str, Any]:
    """Reason, exception type and message from a traceback's last line, not the traceback."""
    last = exc_string.strip().splitlines()[-1] if exc_string.strip() else "Error"
    if last.startswith(HORSE_KILLED) or "AbandonedJobError" in last:
        # RQ's own lines for a dead horse or an expired started entry have no
        # "Type: message" shape; either way the attempt was abandoned.
        reason = reason or FailureReason.ABANDONED
        error_type = "AbandonedJobError"
        message = last.removeprefix("AbandonedJobError:").strip().rstrip("; ")
    else:
        error_type, _, message = last.partition(":")
    if reason is None:
        reason = FailureReason.TIMEOUT if timed_out else FailureReason.ERROR
    return {
        "reason": reason,
        "error_type": error_type.strip()[:200],
        "error_message": message.strip()[:MAX_ERROR_MESSAGE],
    }


def get_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


# --- Listing (admin) ------------------------------------------------------------


# Newest first.
JOBS_KEYSET = Keyset((Job.created_at, Job.id), descending=True)


def list_jobs(
    session: Session,
    *,
    status: str | None,
    name: str | None,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Job]:
    """Jobs with this status and name, after the key ``after`` (``JOBS_KEYSET``)."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if name is not None:
        query = query.where(Job.name == name)
    return list(session.scalars(JOBS_KEYSET.page(query, after, limit)))


# --- Queues and workers (admin) ---------------------------------------------------


@dataclass(frozen=True)
class QueueState:
    """One queue as the rows (the truth) and RQ (the transport) see it."""

    name: str
    priority: str
    waiting_in_rq: int
    rows_waiting: int
    rows_scheduled: int
    rows_running: int
    oldest_waiting_seconds: float | None


def queue_states(session: Session, queues: Queues) -> list[QueueState]:
    """Each queue, high first: RQ's backlog beside the rows waiting for it.

    A row waits from its commit (``pending``) until a worker starts it
    (``queued`` in RQ); a gap between the two counts is delivery in flight,
    or what the relay is about to repair.
    """
    waiting = (JobStatus.PENDING, JobStatus.QUEUED)
    counts = {
        (queue, status): (count, oldest)
        for queue, status, count, oldest in session.execute(
            select(Job.queue, Job.status, func.count(), func.min(Job.created_at))
            .where(
                Job.status.in_([*waiting, JobStatus.SCHEDULED, JobStatus.STARTED]),
            )
            .group_by(Job.queue, Job.status)
        )
    }
    now = _now()
    states = []
    for priority, queue in zip(("high", "default", "low"), queues.ordered, strict=True):
        here = [counts[(queue.name, s)] for s in waiting if (queue.name, s) in counts]
        oldest = min((first for _count, first in here), default=None)
        states.append(
            QueueState(
                name=queue.name,
                priority=priority,
                waiting_in_rq=queue.count,
                rows_waiting=sum(counts.get((queue.name, s), (0, None))[0] for s in waiting),
                rows_scheduled=counts.get((queue.name, JobStatus.SCHEDULED), (0, None))[0],
                rows_running=counts.get((queue.name, JobStatus.STARTED), (0, None))[0],
                oldest_waiting_seconds=(
                    None if oldest is None else round((now - oldest).total_seconds(), 3)
                ),
            )
        )
    return states


@dataclass(frozen=True)
class WorkerState:
    """A worker RQ knows of (it heartbeats; a dead one drops out when its key expires)."""

    name: str
    hostname: str | None
    pid: int | None
    state: str
    queues: list[str]
    current_job_id: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful_jobs: int
    failed_jobs: int


def worker_states(redis: Redis) -> list[WorkerState]:
    """The workers registered in RQ's worker registry, by name."""
    workers = RQWorker.all(connection=redis, serializer=SERIALIZER)
    return sorted(
        (
            WorkerState(
                name=worker.name,
                hostname=worker.hostname,
                pid=worker.pid,
                state=str(worker.get_state()),
                queues=worker.queue_names(),
                current_job_id=worker.get_current_job_id(),
                last_heartbeat=_aware(worker.last_heartbeat),
                birth=_aware(worker.birth_date),
                successful_jobs=worker.successful_job_count,
                failed_jobs=worker.failed_job_count,
            )
            for worker in workers
        ),
        key=lambda state: state.name,
    )


def _aware(moment: datetime | None) -> datetime | None:
    # RQ stores naive UTC times.
    return None if moment is None else moment.replace(tzinfo=UTC)
