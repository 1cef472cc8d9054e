"""What the queues look like at each scrape: depth, oldest waiting job, workers, relay backlog.

A collector the jobs domain adds to ``/metrics`` (``nexus.infrastructure.
metrics.add_collector``); it reads RQ and the ``jobs`` table when
Prometheus scrapes, not on every request. If PostgreSQL or Redis cannot be
read, the gauges that need it are left out of that scrape (Prometheus marks
them stale) rather than failing the scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from nexus.infrastructure import metrics
from nexus.infrastructure.database import get_database
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import get_queues
from nexus.infrastructure.redis import get_redis
from nexus.jobs import services
from nexus.jobs.models import Job, JobStatus

log = get_logger(__name__)


class QueueCollector:
    """Scrape-time gauges of the job engine, read through ``app``."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        with self.app.app_context():
            yield from self._queues()
            yield from self._workers()

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "nexus_queue_depth", "Jobs waiting in RQ, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "nexus_queue_oldest_job_age_seconds",
            "Age of the oldest job waiting to start (pending or queued), per queue; 0 if none.",
            labels=["queue"],
        )
        pending = GaugeMetricFamily(
            "nexus_relay_pending_jobs",
            "Committed jobs not yet handed to RQ (the relay's backlog).",
        )
        try:
            with get_database().sessionmaker() as session:
                states = services.queue_states(session, get_queues())
                backlog = session.scalar(
                    select(func.count()).select_from(Job).where(Job.status == JobStatus.PENDING)
                )
        except (SQLAlchemyError, RedisError) as exc:
            log.warning("metrics.queues_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            return
        for state in states:
            depth.add_metric([state.name], state.waiting_in_rq)
            oldest.add_metric([state.name], state.oldest_waiting_seconds or 0.0)
        pending.add_metric([], backlog or 0)
        yield from (depth, oldest, pending)

    def _workers(self) -> Iterator[Metric]:
        workers = GaugeMetricFamily("nexus_workers", "Workers registered and heartbeating in RQ.")
        try:
            workers.add_metric([], len(services.worker_states(get_redis())))
        except RedisError:
            return
        yield workers


def init_app(app: Flask) -> None:
    metrics.add_collector(app, QueueCollector(app))
