"""Prometheus metrics: every metric Nexus exports, defined once, and how they are rendered.

Each metric has HELP text and labels of bounded values only (route
templates, methods, statuses, problem codes, job names, queue names; never
a user id or a raw path). Code that counts something imports its metric
from here: ``metrics.LOGINS.labels(result="success").inc()``.

**Processes.** Under gunicorn, ``gunicorn.conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker imports this module, empties
it when the server starts, and marks each exiting worker dead, so
prometheus-client's multiprocess mode adds every process's counts up: a
restarted worker's counts stay (its file remains) and are not doubled (the
new process writes a new file). Gauges of live state (in-flight requests,
pool connections) sum over live processes only. Without the variable (one
process: ``flask run``, the RQ worker) the default registry is used. An RQ
worker serves its own metrics (``NEXUS_WORKER_METRICS_PORT``), counted in
the worker process itself, not in the short-lived processes it forks per job.

**Scrape-time state** (queue depths, live workers, Redis up) comes from
collectors a domain adds with :func:`add_collector`; they run at each
scrape, in the process that serves it. Imports no feature package.
"""

from __future__ import annotations

import contextlib
import glob
import os
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from flask import Flask
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.values import MutexValue
from redis import Redis
from redis.exceptions import RedisError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
COLLECTORS_KEY = "nexus.metrics_collectors"
# Request latency: from a cache hit to a slow upload.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "nexus_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "nexus_http_request_duration_seconds",
    "Time from a request's start to its response, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "nexus_http_requests_in_flight",
    "Requests being handled now, over every web process.",
    multiprocess_mode="livesum",
)
PROBLEMS = Counter(
    "nexus_problems",
    "Problem documents answered, by error code.",
    ["code"],
)
LOGINS = Counter(
    "nexus_logins",
    "Login attempts by result: success, failure (a wrong address or password), "
    "locked (refused by the account's lockout).",
    ["result"],
)
TOKEN_REFUSALS = Counter(
    "nexus_token_refusals",
    "Bearer tokens refused, by reason: missing, invalid, expired, revoked.",
    ["reason"],
)
RATE_LIMITED = Counter(
    "nexus_rate_limited",
    "Requests refused with 429 by a rate limit, by route template.",
    ["route"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "nexus_rate_limit_fail_open",
    "Requests served without a rate-limit check because Redis could not be reached.",
)
DB_POOL_CHECKED_OUT = Gauge(
    "nexus_db_pool_checked_out",
    "Database connections in use, over every live process.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "nexus_db_pool_size",
    "Database connections each pool keeps, summed over live processes.",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "nexus_db_pool_overflow",
    "Database connections open beyond the pools' size, over every live process.",
    multiprocess_mode="livesum",
)
JOBS_ENQUEUED = Counter(
    "nexus_jobs_enqueued",
    "Jobs recorded for delivery, by job name.",
    ["job"],
)
JOBS_STARTED = Counter(
    "nexus_jobs_started",
    "Job attempts started by a worker, by job name.",
    ["job"],
)
JOBS_FINISHED = Counter(
    "nexus_jobs_finished",
    "Job attempts that finished, by job name.",
    ["job"],
)
JOBS_FAILED = Counter(
    "nexus_jobs_failed",
    "Job attempts that failed with no retry left, by job name.",
    ["job"],
)
JOBS_RETRIED = Counter(
    "nexus_jobs_retried",
    "Job attempts that failed and will be tried again, by job name.",
    ["job"],
)
JOBS_ABANDONED = Counter(
    "nexus_jobs_abandoned",
    "Jobs whose worker died under them, found by the reconciler, by job name.",
    ["job"],
)
MAILS_SENT = Counter(
    "nexus_mails_sent",
    "Messages the SMTP relay accepted, by kind of message.",
    ["kind"],
)
MAILS_FAILED = Counter(
    "nexus_mails_failed",
    "Attempts to hand a message to the SMTP relay that failed (each is retried), by kind.",
    ["kind"],
)
JOB_DURATION = Histogram(
    "nexus_job_duration_seconds",
    "Time a worker spent on a job attempt, by job name.",
    ["job"],
    buckets=JOB_BUCKETS,
)


def _fresh_locks(metric: Any) -> None:
    """New locks for a metric, its labelled children and their values."""
    if hasattr(metric, "_lock"):
        metric._lock = threading.Lock()
    for child in list(getattr(metric, "_metrics", {}).values()):
        _fresh_locks(child)
    values = [getattr(metric, "_value", None), getattr(metric, "_sum", None)]
    for value in [*values, *getattr(metric, "_buckets", [])]:
        if isinstance(value, MutexValue):
            value._lock = threading.Lock()


def _reset_locks_after_fork() -> None:
    # prometheus-client guards each value with a plain lock. A worker forks a
    # work horse while its relay thread may hold one (it counts pool
    # connections and enqueues): the horse would inherit that lock held, and
    # hang on its first count. Its counts are never scraped; its locks start free.
    for name, value in globals().items():
        if name.isupper() and isinstance(value, Counter | Gauge | Histogram):
            _fresh_locks(value)


os.register_at_fork(after_in_child=_reset_locks_after_fork)


class Collector(Protocol):
    """Something that reports metrics when scraped (prometheus-client's collector)."""

    def collect(self) -> Iterable[Metric]: ...


class RedisUp:
    """``nexus_redis_up``: 1 if Redis answers a PING at scrape time, else 0."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis  # a client that gives up quickly

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("nexus_redis_up", "1 if Redis answered a PING at this scrape.")
        try:
            gauge.add_metric([], 1.0 if self.redis.ping() else 0.0)
        except RedisError:
            gauge.add_metric([], 0.0)
        yield gauge


def add_collector(app: Flask, collector: Collector) -> None:
    """Report ``collector``'s metrics at each scrape of ``app``'s ``/metrics``."""
    app.extensions.setdefault(COLLECTORS_KEY, []).append(collector)


def method_label(method: str) -> str:
    """The method, or ``OTHER``: a client may send any word as a method."""
    return method if method in METHODS else "OTHER"


def render(app: Flask) -> bytes:
    """Every metric, in the text exposition format: all processes', then the scrape-time ones."""
    scraped = CollectorRegistry(auto_describe=False)
    for collector in app.extensions.get(COLLECTORS_KEY, []):
        scraped.register(collector)
    return generate_latest(process_registry()) + generate_latest(scraped)


def reap_dead_processes(directory: str) -> None:
    """Drop the live gauges of processes that are gone (their counts stay).

    gunicorn says when a worker exits (``child_exit``); granian has no such
    hook, so each scrape looks for files of live gauges whose process no
    longer runs: a restarted worker's requests in flight are not counted forever.
    """
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = path.rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another scrape was first
                multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


def process_registry() -> CollectorRegistry:
    """The counted metrics: every process's (multiprocess mode), else this process's."""
    if directory := os.environ.get(MULTIPROC_ENV):
        reap_dead_processes(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY
