"""The RQ worker classes that run every job inside the Nexus app.

``NexusWorker`` is what ``flask --app nexus worker`` starts, and what a plain
``rq worker -w nexus.jobs.worker.NexusWorker`` uses: each job runs in a forked
work horse inside an app context, so it has the settings, its own database
session (closed when the job ends) and the log context ``job_id``,
``job_name`` and ``queue``. Exceptions are left to RQ so its failed-job
registry and retries see them. Each attempt's start and outcome are written
to the job's row in the ``jobs`` table (when it has one), in transactions of
their own. The serializer is always JSON, whatever a command line says,
because that is what the queues write.
``NexusSimpleWorker`` runs jobs in its own process instead of forking (tests,
debuggers).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
from flask import Flask
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.job import JobStatus as RQJobStatus
from rq.worker.base import BaseWorker
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nexus.infrastructure.database import get_database
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import SERIALIZER
from nexus.jobs import services as job_services
from nexus.jobs.models import JobStatus

log = get_logger(__name__)


class _AppWorkerMixin(BaseWorker):
    """Pushes the app context and binds the job's log context around each job."""

    def __init__(self, *args: Any, app: Flask | None = None, **kwargs: Any) -> None:
        if app is None:
            # `rq worker -w ...` builds the worker without an app; build it here
            # (late import: the app's CLI imports this module).
            from nexus.app import create_app_or_exit  # noqa: PLC0415

            app = create_app_or_exit()
        self.app = app
        self.shutdown_grace: int = app.extensions["nexus.settings"].worker_shutdown_grace
        kwargs["serializer"] = SERIALIZER
        super().__init__(*args, **kwargs)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the running job, but within the grace period.

        RQ's warm shutdown waits for the job however long it takes; a deploy
        cannot. After ``NEXUS_WORKER_SHUTDOWN_GRACE`` seconds we send ourselves
        the second signal, RQ's cold shutdown: the job's horse is killed (the
        job stays in RQ's started registry, to be failed as abandoned) and the
        worker still exits 0.
        """
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # raises when idle
        if self._stop_requested:
            self.log.info(
                "Worker %s: draining, the running job has %s s to finish",
                self.name,
                self.shutdown_grace,
            )
            timer = threading.Timer(self.shutdown_grace, self._grace_expired)
            timer.daemon = True
            timer.start()

    def _grace_expired(self) -> None:
        self.log.warning("Worker %s: shutdown grace expired, stopping the job", self.name)
        os.kill(os.getpid(), signal.SIGTERM)

    def perform_job(self, job: Job, queue: Queue) -> bool:
        with self.app.app_context():
            meta = job.meta or {}
            # The enqueuing request's id joins its logs with the job's.
            structlog.contextvars.bind_contextvars(
                job_id=job.id,
                job_name=job.func_name,
                queue=queue.name,
                request_id=meta.get("request_id"),
                user_id=meta.get("user_id") or None,
            )
            try:
                _report(lambda session: job_services.mark_started(session, job.id))
                performed: bool = super().perform_job(job, queue)
                _report(lambda session: _record_outcome(session, job))
            finally:
                structlog.contextvars.clear_contextvars()
        return performed


def _report(write: Callable[[Session], object]) -> None:
    """Write to the job's row in a transaction of its own; never fail the job for it.

    If PostgreSQL is unreachable the row is reconciled later; the job itself
    still runs and RQ still records it.
    """
    try:
        with get_database().sessionmaker() as session, session.begin():
            write(session)
    except SQLAlchemyError as exc:
        log.error("jobs.record_failed", error=str(exc))


def _record_outcome(session: Session, job: Job) -> None:
    status = job.get_status(refresh=True)
    if status == RQJobStatus.FINISHED:
        job_services.mark_outcome(
            session, job.id, status=JobStatus.FINISHED, result=job.return_value(refresh=True)
        )
        return
    latest = job.latest_result()
    exc_string = latest.exc_string if latest is not None else None
    timed_out = bool(exc_string and "JobTimeoutException" in exc_string)
    mapped = {
        RQJobStatus.FAILED: JobStatus.FAILED,
        RQJobStatus.SCHEDULED: JobStatus.SCHEDULED,  # a retry after an interval
        RQJobStatus.QUEUED: JobStatus.QUEUED,  # a retry at once
    }.get(status, JobStatus.FAILED)
    job_services.mark_outcome(
        session, job.id, status=mapped, exc_string=exc_string, timed_out=timed_out
    )


class NexusWorker(_AppWorkerMixin, Worker):
    """Forks a work horse per job, so a crashing job cannot take the worker down."""


class NexusSimpleWorker(_AppWorkerMixin, SimpleWorker):
    """Runs each job in the worker process itself."""
