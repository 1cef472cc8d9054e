"""The relay: delivers what Redis did not take, and re-delivers what Redis forgot.

Runs beside every worker (``flask --app nexus worker`` starts it on a
daemon thread) because PostgreSQL, not Redis, knows what was accepted:

- ``pending`` rows older than a few seconds (Redis was unreachable at their
  commit) are delivered; while Redis stays down the relay backs off,
  doubling its wait up to a limit, and resumes by itself when it returns.
- ``queued`` and ``scheduled`` rows that RQ no longer knows (Redis restarted
  without its data) are put back to ``pending`` with reason ``lost`` and
  delivered again under the same id.

Several workers may run relays: delivery locks each row, and a row already
delivered is skipped, so a job is never handed to RQ twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nexus.infrastructure.database import get_database
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import SERIALIZER, Queues, get_queues
from nexus.jobs.models import FailureReason, Job, JobStatus
from nexus.jobs.services import deliver

log = get_logger(__name__)
PENDING_GRACE = timedelta(seconds=3)  # the after-commit delivery's turn first
BATCH = 200


@dataclass(frozen=True)
class RelayReport:
    delivered: int = 0
    lost: int = 0
    redis_down: bool = False


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
        if not deliver(job_id, queues=queues, sessions=sessions):
            return RelayReport(delivered=delivered, redis_down=True)
        delivered += 1
    return RelayReport(delivered=delivered)


def reconcile_lost(*, sessions: sessionmaker[Session], queues: Queues, redis: Redis) -> RelayReport:
    """Re-deliver queued or scheduled rows whose RQ job no longer exists."""
    with sessions() as session:
        ids = session.scalars(
            select(Job.id)
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.SCHEDULED]))
            .where(Job.enqueued_at < _now() - PENDING_GRACE)
            .order_by(Job.enqueued_at)
            .limit(BATCH)
        ).all()
    lost = 0
    for job_id in ids:
        try:
            RQJob.fetch(str(job_id), connection=redis, serializer=SERIALIZER)
            continue
        except NoSuchJobError:
            pass
        with sessions() as session, session.begin():
            # Only if still queued: a worker may have started it meanwhile.
            changed = (
                session.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.status.in_([JobStatus.QUEUED, JobStatus.SCHEDULED]),
                    )
                    .values(status=JobStatus.PENDING, reason=FailureReason.LOST)
                    .returning(Job.id)
                ).first()
                is not None
            )
        if changed:
            lost += 1
            log.warning("jobs.lost_redelivered", job_id=str(job_id))
            if not deliver(job_id, queues=queues, sessions=sessions):
                return RelayReport(lost=lost, redis_down=True)
    return RelayReport(lost=lost)


class Relay(threading.Thread):
    """Runs ``deliver_pending`` and ``reconcile_lost`` every ``interval`` seconds."""

    def __init__(self, app: Flask, *, interval: float = 2.0, max_backoff: float = 10.0) -> None:
        super().__init__(name="nexus-job-relay", daemon=True)
        self.app = app
        self.interval = interval
        self.max_backoff = max_backoff
        self.stopped = threading.Event()

    def run_once(self) -> RelayReport:
        with self.app.app_context():
            sessions = get_database().sessionmaker
            queues = get_queues()
            pending = deliver_pending(sessions=sessions, queues=queues)
            if pending.redis_down:
                return pending
            lost = reconcile_lost(sessions=sessions, queues=queues, redis=queues.default.connection)
            return RelayReport(pending.delivered, lost.lost, lost.redis_down)

    def run(self) -> None:
        wait = self.interval
        while not self.stopped.wait(wait):
            try:
                report = self.run_once()
            except (RedisError, SQLAlchemyError) as exc:
                report = RelayReport(redis_down=True)
                log.warning("jobs.relay_failed", error=str(exc))
            if report.delivered or report.lost:
                log.info("jobs.relay", delivered=report.delivered, lost=report.lost)
            # Back off while a dependency is down, so a long outage costs
            # little; come back to the normal pace as soon as it answers.
            wait = min(wait * 2, self.max_backoff) if report.redis_down else self.interval
