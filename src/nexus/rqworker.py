"""``rq worker -w nexus.rqworker.Worker``: RQ's own command, running jobs inside the Nexus app.

RQ's CLI builds the worker class itself, with no app; this entry point builds
the app (exiting with the list of bad variables if the configuration is
invalid) and hands it to :class:`~nexus.jobs.worker.NexusWorker`.
``flask --app nexus worker`` is the usual way; this is for tooling that
speaks RQ.
"""

from __future__ import annotations

from typing import Any

from nexus.app import create_app_or_exit
from nexus.jobs.worker import NexusWorker


class Worker(NexusWorker):
    """A ``NexusWorker`` that builds its own app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("app", create_app_or_exit())
        super().__init__(*args, **kwargs)
