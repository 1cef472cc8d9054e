"""The job system's own periodic jobs: the reconciler's sweep, and the retention purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from nexus.config import current_settings
from nexus.infrastructure.database import get_session, transaction
from nexus.jobs.models import ENDED_STATUSES, Job
from nexus.jobs.registry import job_type
from nexus.jobs.relay import Reconciler

PURGE_BATCH = 5_000


@job_type("jobs.reconcile", priority="high", timeout=120, schedule="*/5 * * * *")
def reconcile() -> dict[str, Any]:
    """One reconciler pass, recorded: its row says what it delivered, found lost or recovered.

    Every worker's relay already runs this every two seconds (which is what
    bounds recovery times); as a job it leaves a trace an operator can list
    (``?name=jobs.reconcile``). Ticks are the relay's business, not this job's.
    """
    report = Reconciler(with_schedules=False).run()
    return {
        "delivered": report.delivered,
        "lost": report.lost,
        "abandoned": report.abandoned,
        "settled": report.settled,
        "redis_down": report.redis_down,
    }


@job_type("jobs.purge_ended", priority="low", timeout=600, schedule="23 3 * * *")
def purge_ended() -> dict[str, int]:
    """Delete rows of jobs that ended more than ``NEXUS_JOB_RETENTION_DAYS`` ago, in batches.

    Each batch is its own short transaction, so a large backlog never holds
    locks for long.
    """
    before = datetime.now(UTC) - timedelta(days=current_settings().job_retention_days)
    session = get_session()
    deleted = 0
    while True:
        with transaction(session):
            batch = (
                select(Job.id)
                .where(Job.status.in_(ENDED_STATUSES), Job.ended_at < before)
                .limit(PURGE_BATCH)
            )
            count = len(
                session.scalars(delete(Job).where(Job.id.in_(batch)).returning(Job.id)).all()
            )
        deleted += count
        if count < PURGE_BATCH:
            return {"deleted": deleted}
