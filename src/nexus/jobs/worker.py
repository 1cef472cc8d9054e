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
            from nexus.app import create_app  # noqa: PLC0415

            app = create_app()
        self.app = app
        kwargs["serializer"] = SERIALIZER
        super().__init__(*args, **kwargs)

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
