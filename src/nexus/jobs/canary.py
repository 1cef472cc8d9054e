"""The canary job: proves the pipeline end to end, and measures it.

An operator enqueues one (``POST /api/v1/admin/jobs/canary``) or many
(``flask --app nexus jobs canary --count N --concurrency K``); each sleeps
for the seconds asked and answers how long it waited in the queue and how
long it ran. Its row's ``attempts`` counts its runs, so a batch shows
whether every canary ran exactly once.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import Queues, get_queues
from nexus.jobs import services
from nexus.jobs.models import ENDED_STATUSES, Job
from nexus.jobs.registry import job_type

NAME = "jobs.canary"


@job_type(NAME, priority="default", timeout=360, retries=2, retry_intervals=(1, 5))
def canary(seconds: float, enqueued_at: str) -> dict[str, Any]:
    started = datetime.now(UTC)
    waited = (started - datetime.fromisoformat(enqueued_at)).total_seconds()
    time.sleep(seconds)
    return {
        "queue_wait_ms": round(waited * 1000, 1),
        "run_ms": round((datetime.now(UTC) - started).total_seconds() * 1000, 1),
        "worker_pid": os.getpid(),
    }


def enqueue_canary(
    *,
    session: Session,
    queues: Queues,
    sessions: sessionmaker[Session],
    seconds: float,
    enqueued_by: uuid.UUID | None = None,
    request_id: str | None = None,
) -> Job:
    """One canary, in the caller's transaction."""
    return services.enqueue_with(
        session=session,
        queues=queues,
        sessions=sessions,
        name=NAME,
        arguments={"seconds": seconds, "enqueued_at": datetime.now(UTC).isoformat()},
        enqueued_by=enqueued_by,
        request_id=request_id,
    )


@dataclass(frozen=True)
class BatchReport:
    """How a batch of canaries went."""

    ids: list[uuid.UUID]
    statuses: Counter[str]
    attempts: Counter[int]
    queue_wait_ms: list[float]
    seconds: float  # from the first enqueue to the last job ending (or the timeout)

    @property
    def all_finished_once(self) -> bool:
        return self.statuses == Counter({"finished": len(self.ids)}) and self.attempts == Counter(
            {1: len(self.ids)}
        )

    @property
    def jobs_per_second(self) -> float:
        return self.statuses["finished"] / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if len(self.queue_wait_ms) < 2:
            return self.queue_wait_ms[0] if self.queue_wait_ms else 0.0
        return statistics.quantiles(self.queue_wait_ms, n=100)[round(fraction * 100) - 1]


def run_batch(
    app: Flask, *, count: int, concurrency: int, seconds: float, timeout: float
) -> BatchReport:
    """Enqueue ``count`` canaries from ``concurrency`` threads, then wait for all to end."""
    ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def enqueue_one(_: int) -> None:
        with app.app_context():
            sessions = get_database().sessionmaker
            with sessions() as session, session.begin():
                job = enqueue_canary(
                    session=session, queues=get_queues(), sessions=sessions, seconds=seconds
                )
                job_id = job.id
        with lock:
            ids.append(job_id)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(enqueue_one, range(count)))
    deadline = began + timeout
    with app.app_context():
        sessions = get_database().sessionmaker
        while True:
            rows = _rows(sessions, ids)
            if all(row.status in ENDED_STATUSES for row in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return BatchReport(
        ids=ids,
        statuses=Counter(row.status for row in rows),
        attempts=Counter(row.attempts for row in rows),
        queue_wait_ms=sorted(
            float(row.result["queue_wait_ms"])
            for row in rows
            if isinstance(row.result, dict) and "queue_wait_ms" in row.result
        ),
        seconds=time.monotonic() - began,
    )


def _rows(sessions: sessionmaker[Session], ids: list[uuid.UUID]) -> list[Job]:
    with sessions() as session:
        rows = list(session.scalars(select(Job).where(Job.id.in_(ids))))
        session.expunge_all()
    return rows
