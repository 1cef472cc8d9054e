"""The RQ worker classes that run every job inside the Nexus app.

``NexusWorker`` is what ``flask --app nexus worker`` starts, and what a plain
``rq worker -w nexus.jobs.worker.NexusWorker`` uses: each job runs in a forked
work horse inside an app context, so it has the settings, its own database
session (closed when the job ends) and the log context ``job_id``,
``job_name`` and ``queue``. Exceptions are left to RQ so its failed-job
registry and retries see them. The serializer is always JSON, whatever a
command line says, because that is what the queues write.
``NexusSimpleWorker`` runs jobs in its own process instead of forking (tests,
debuggers).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import structlog
from flask import Flask
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker.base import BaseWorker

from nexus.infrastructure.queue import SERIALIZER


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
            structlog.contextvars.bind_contextvars(
                job_id=job.id, job_name=job.func_name, queue=queue.name
            )
            try:
                result: bool = super().perform_job(job, queue)
            finally:
                structlog.contextvars.clear_contextvars()
        return result


class NexusWorker(_AppWorkerMixin, Worker):
    """Forks a work horse per job, so a crashing job cannot take the worker down."""


class NexusSimpleWorker(_AppWorkerMixin, SimpleWorker):
    """Runs each job in the worker process itself."""
