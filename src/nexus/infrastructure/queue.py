"""Queues: the RQ queues of a process, on the shared Redis pool, speaking JSON.

Owns the three queues (high, default, low; names from the settings), their
serializer (JSON: jobs carry ids and small values, and a payload is never
executable code, unlike pickle) and their default timeout. It only builds
connections and queues: running jobs belongs to ``nexus.jobs``.
Imports no feature package.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from nexus.config import Settings

EXTENSION_KEY = "nexus.queues"
SERIALIZER = JSONSerializer


@dataclass(frozen=True)
class Queues:
    """The app's queues; ``ordered`` is the order a worker serves them."""

    high: Queue
    default: Queue
    low: Queue

    @property
    def ordered(self) -> list[Queue]:
        return [self.high, self.default, self.low]

    def named(self, names: list[str] | tuple[str, ...]) -> list[Queue]:
        """The queues called ``names``, in that order; ``KeyError`` for an unknown name."""
        by_name = {queue.name: queue for queue in self.ordered}
        return [by_name[name] for name in names]


def create_queues(redis: Redis, settings: Settings) -> Queues:
    def make(name: str) -> Queue:
        return Queue(
            name,
            connection=redis,
            serializer=SERIALIZER,
            default_timeout=settings.job_timeout,
        )

    return Queues(
        high=make(settings.queue_high),
        default=make(settings.queue_default),
        low=make(settings.queue_low),
    )


def init_app(app: Flask, queues: Queues) -> None:
    app.extensions[EXTENSION_KEY] = queues


def get_queues() -> Queues:
    queues: Queues = current_app.extensions[EXTENSION_KEY]
    return queues
