"""The relay and reconciler: PostgreSQL says what was accepted, and this makes RQ agree.

Runs on a thread beside every worker (``NexusWorker`` starts it), every two
seconds, because it must work exactly when Redis or a worker does not:

- ``pending`` rows older than a few seconds (Redis was unreachable at their
  commit) are delivered; while Redis stays down the relay backs off,
  doubling its wait up to a limit, and resumes by itself when it returns.
- ``scheduled`` rows whose time has come are delivered: delayed jobs and
  retries of abandoned attempts wait here rather than in RQ, and a retry RQ
  scheduled is delivered by the relay if RQ's scheduler has not moved it
  within a few seconds (it died with a killed worker, say).
- ``queued`` rows that RQ no longer knows (Redis restarted without its data),
  or knows but will never run (its job in no queue: a worker killed between
  taking it and starting it, or RQ's own clean-up failing it), are put back
  to ``pending`` with reason ``lost`` and delivered again under the same id.
- ``started`` rows whose worker stopped heartbeating for
  ``NEXUS_ABANDONED_JOB_SECONDS`` (killed with SIGKILL, out of memory, a lost
  node) are settled from RQ if RQ saw the end, else retried when attempts
  remain and failed with reason ``abandoned`` when none do. A single worker
  that is restarted recovers its own dead attempt this way.
- periodic job types whose cron tick is due are enqueued (``schedules``).

The same sweep is the periodic job ``jobs.reconcile``, whose rows show an
operator what each pass found. Several relays may run at once: every change
locks its row (skipping rows another relay holds), and a tick's dedupe key
is unique, so nothing is delivered or scheduled twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQJobStatus
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nexus.config import current_settings
from nexus.infrastructure import metrics
from nexus.infrastructure.database import get_database
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import SERIALIZER, Queues, get_queues
from nexus.jobs import registry, schedules, services
from nexus.jobs.models import FailureReason, Job, JobStatus

log = get_logger(__name__)
PENDING_GRACE = timedelta(seconds=3)  # the after-commit delivery's turn first
SCHEDULER_GRACE = timedelta(seconds=5)  # RQ's scheduler's turn first
BATCH = 200


@dataclass(frozen=True)
class RelayReport:
    delivered: int = 0
    lost: int = 0
    abandoned: int = 0
    settled: int = 0
    ticks: int = 0  # periodic jobs enqueued
    redis_down: bool = False

    @property
    def changed(self) -> bool:
        return any((self.delivered, self.lost, self.abandoned, self.settled, self.ticks))


def _now() -> datetime:
    return datetime.now(UTC)


def deliver_pending(*, sessions: sessionmaker[Session], queues: Queues) -> RelayReport:
    """Deliver pending rows, oldest first; stop at the first Redis failure."""
    with sessions() as session:
        ids = session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.PENDING, Job.created_at < _now() - PENDING_GRACE)
            .order_by(Job.created_at)
            .limit(BATCH)
        ).all()
    delivered = 0
    for job_id in ids:
        if not services.deliver(job_id, queues=queues, sessions=sessions):
            return RelayReport(delivered=delivered, redis_down=True)
        delivered += 1
    return RelayReport(delivered=delivered)


def deliver_due(*, sessions: sessionmaker[Session], queues: Queues, redis: Redis) -> RelayReport:
    """Deliver ``scheduled`` rows whose time has come.

    Delays are held here, not in RQ. A retry RQ scheduled after an interval
    is left to RQ's scheduler for a few seconds; if it has not moved it by
    then (its process died with a killed worker, and its lock has not
    expired yet), the relay delivers it itself.
    """
    now = _now()
    with sessions() as session:
        ids = session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.SCHEDULED, Job.run_at <= now)
            .order_by(Job.run_at)
            .limit(BATCH)
        ).all()
    delivered = 0
    for job_id in ids:
        rq_job = _rq_job(job_id, redis)
        if rq_job is not None and rq_job.get_position() is not None:
            _set_status(sessions, job_id, JobStatus.SCHEDULED, JobStatus.QUEUED)  # RQ moved it
            continue
        with sessions() as session, session.begin():
            row = session.scalar(
                select(Job)
                .where(Job.id == job_id, Job.status == JobStatus.SCHEDULED)
                .with_for_update(skip_locked=True)
            )
            if row is None or row.run_at is None:
                continue
            if rq_job is not None and row.run_at > now - SCHEDULER_GRACE:
                continue  # RQ's scheduler's turn first
            row.status = JobStatus.PENDING
            row.run_at = None
        if not services.deliver(job_id, queues=queues, sessions=sessions):
            return RelayReport(delivered=delivered, redis_down=True)
        delivered += 1
    return RelayReport(delivered=delivered)


def _set_status(
    sessions: sessionmaker[Session], job_id: object, old: JobStatus, new: JobStatus
) -> None:
    with sessions() as session, session.begin():
        session.execute(update(Job).where(Job.id == job_id, Job.status == old).values(status=new))


def reconcile_lost(
    *, sessions: sessionmaker[Session], queues: Queues, redis: Redis, after: timedelta
) -> RelayReport:
    """Re-deliver queued rows that RQ will not run: it lost the job, or holds it in no queue.

    A duplicate is harmless: a worker runs a row only from ``pending``,
    ``queued`` or ``scheduled`` (``services.start_attempt``).
    """
    cutoff = _now() - after
    with sessions() as session:
        ids = session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED)
            .where(Job.enqueued_at < _now() - PENDING_GRACE)
            .order_by(Job.enqueued_at)
            .limit(BATCH)
        ).all()
    lost = 0
    for job_id in ids:
        rq_job = _rq_job(job_id, redis)
        if rq_job is not None and _will_run(rq_job, cutoff):
            continue
        with sessions() as session, session.begin():
            # Only if still queued: a worker may have started it meanwhile.
            changed = (
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
                    .values(status=JobStatus.PENDING, reason=FailureReason.LOST)
                    .returning(Job.id)
                ).first()
                is not None
            )
        if changed:
            lost += 1
            log.warning("jobs.lost_redelivered", job_id=str(job_id))
            if not services.deliver(job_id, queues=queues, sessions=sessions):
                return RelayReport(lost=lost, redis_down=True)
    return RelayReport(lost=lost)


def recover_abandoned(
    *, sessions: sessionmaker[Session], queues: Queues, redis: Redis, after: timedelta
) -> RelayReport:
    """Settle, retry or fail running rows whose worker has been silent for ``after``."""
    cutoff = _now() - after
    silent_since = func.coalesce(Job.heartbeat_at, Job.started_at)
    with sessions() as session:
        rows = session.execute(
            select(Job.id, Job.attempts)
            .where(Job.status == JobStatus.STARTED, silent_since < cutoff)
            .order_by(silent_since)
            .limit(BATCH)
        ).all()
    abandoned = settled = 0
    for job_id, attempt in rows:
        rq_job = _rq_job(job_id, redis)
        if rq_job is not None and _alive_in_rq(rq_job, cutoff):
            continue  # only PostgreSQL missed its heartbeats
        with sessions() as session, session.begin():
            row = session.scalar(
                select(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.STARTED,
                    Job.attempts == attempt,
                    silent_since < cutoff,
                )
                .with_for_update(skip_locked=True)
            )
            if row is None:
                continue  # it reported, or another relay has it
            if rq_job is not None and services.settle_from_rq(session, rq_job, attempt=attempt):
                settled += 1
                log.warning("jobs.settled_from_rq", job_id=str(job_id), attempt=attempt)
                continue
            outcome = services.abandon(row, redis=redis, retry_wait=_retry_wait(row))
            job_name = row.name
        abandoned += 1
        metrics.JOBS_ABANDONED.labels(job=job_name).inc()
        log.warning(
            "jobs.abandoned", job_id=str(job_id), attempt=attempt, outcome=str(outcome.value)
        )
        if outcome == JobStatus.PENDING and not services.deliver(
            job_id, queues=queues, sessions=sessions
        ):
            return RelayReport(abandoned=abandoned, settled=settled, redis_down=True)
    return RelayReport(abandoned=abandoned, settled=settled)


def _rq_job(job_id: object, redis: Redis) -> RQJob | None:
    try:
        return RQJob.fetch(str(job_id), connection=redis, serializer=SERIALIZER)
    except NoSuchJobError:
        return None


def _will_run(rq_job: RQJob, cutoff: datetime) -> bool:
    """RQ has the job in hand: in its queue, in its scheduled registry, or running and alive.

    ``queued`` in no queue is a job a worker took and never started (it was
    killed in between); ``failed`` or ``stopped`` while the row says queued
    is RQ's clean-up failing such a job without running it.
    """
    status = rq_job.get_status(refresh=False)
    if status in (RQJobStatus.QUEUED, RQJobStatus.SCHEDULED):
        return services.waiting_in_rq(rq_job)
    if status == RQJobStatus.STARTED:
        return _alive_in_rq(rq_job, cutoff)
    return status == RQJobStatus.DEFERRED


def _alive_in_rq(rq_job: RQJob, cutoff: datetime) -> bool:
    """RQ still sees the attempt running, with a heartbeat newer than ``cutoff``."""
    if rq_job.get_status(refresh=False) != RQJobStatus.STARTED or rq_job.last_heartbeat is None:
        return False
    return rq_job.last_heartbeat.replace(tzinfo=UTC) >= cutoff


def _retry_wait(row: Job) -> int:
    try:
        job_type = registry.get(row.name)
    except registry.UnknownJobError:
        return 0
    return job_type.interval(max(0, job_type.retries - (row.max_attempts - row.attempts)))


@dataclass
class Reconciler:
    """One pass over everything above; keeps which schedule ticks it has seen."""

    with_schedules: bool = True
    seen_ticks: schedules.SeenTicks = field(default_factory=dict)

    def run(self) -> RelayReport:
        """Needs an app context."""
        sessions = get_database().sessionmaker
        queues = get_queues()
        redis = queues.default.connection
        ticks = 0
        if self.with_schedules:
            ticks = schedules.enqueue_due(sessions=sessions, queues=queues, seen=self.seen_ticks)
        pending = deliver_pending(sessions=sessions, queues=queues)
        if pending.redis_down:
            return RelayReport(delivered=pending.delivered, ticks=ticks, redis_down=True)
        due = deliver_due(sessions=sessions, queues=queues, redis=redis)
        if due.redis_down:
            return RelayReport(
                delivered=pending.delivered + due.delivered, ticks=ticks, redis_down=True
            )
        after = timedelta(seconds=current_settings().abandoned_job_seconds)
        lost = reconcile_lost(sessions=sessions, queues=queues, redis=redis, after=after)
        recovered = RelayReport()
        if not lost.redis_down:
            recovered = recover_abandoned(
                sessions=sessions, queues=queues, redis=redis, after=after
            )
        return RelayReport(
            delivered=pending.delivered + due.delivered,
            lost=lost.lost,
            abandoned=recovered.abandoned,
            settled=recovered.settled,
            ticks=ticks,
            redis_down=lost.redis_down or recovered.redis_down,
        )


class Relay(threading.Thread):
    """Runs the ``Reconciler`` every ``interval`` seconds, backing off while Redis is down."""

    def __init__(
        self,
        app: Flask,
        *,
        interval: float = 2.0,
        max_backoff: float = 10.0,
        with_schedules: bool = True,
    ) -> None:
        super().__init__(name="nexus-job-relay", daemon=True)
        self.app = app
        self.interval = interval
        self.max_backoff = max_backoff
        self.stopped = threading.Event()
        self.reconciler = Reconciler(with_schedules=with_schedules)

    def run_once(self) -> RelayReport:
        with self.app.app_context():
            return self.reconciler.run()

    def run(self) -> None:
        wait = self.interval
        while not self.stopped.wait(wait):
            try:
                report = self.run_once()
            except (RedisError, SQLAlchemyError) as exc:
                report = RelayReport(redis_down=True)
                log.warning("jobs.relay_failed", error=str(exc))
            if report.changed:
                log.info(
                    "jobs.relay",
                    delivered=report.delivered,
                    lost=report.lost,
                    abandoned=report.abandoned,
                    settled=report.settled,
                    ticks=report.ticks,
                )
            # Back off while a dependency is down, so a long outage costs
            # little; come back to the normal pace as soon as it answers.
            wait = min(wait * 2, self.max_backoff) if report.redis_down else self.interval
