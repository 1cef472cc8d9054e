"""Jobs per second through one worker: Nexus' durable jobs against bare RQ, side by side.

    .venv/bin/python bench/job_throughput.py [--jobs 300] [--rounds 3]

Needs DATABASE_URL and REDIS_URL (``make dev``'s servers:
``set -a; . data/dev/services.env``) and no worker of its own running (stop
``make dev``'s: its relay shares the jobs table); uses Redis database 14.
Each round checks that every job finished.
Each round, in alternating order so machine noise hits both alike, runs:

- bare: ``queue.enqueue(noop)`` N times, then a plain RQ worker (JSON
  serializer) drains the queue in burst mode;
- nexus: N ``jobs.services.enqueue`` calls, each committing its row, then a
  Nexus worker drains the queue (each job: attempt counted, app context,
  outcome written to its row);

each with the forking worker class (RQ's ``Worker``, ``NexusWorker``) and
with the one that runs jobs in its own process (``SimpleWorker``,
``NexusSimpleWorker``: ``NEXUS_WORKER_MODE=simple``). Reports each side's
median jobs/s and the ratio nexus / bare for each class. The rows it
creates are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import urllib.parse
from collections.abc import Callable

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from sqlalchemy import delete, func, select

from nexus.app import create_app
from nexus.config import load_settings
from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import SERIALIZER, get_queues
from nexus.jobs import services
from nexus.jobs.models import Job
from nexus.jobs.registry import job_type
from nexus.jobs.worker import NexusSimpleWorker, NexusWorker

# The smallest job, importable by both workers: what is measured is the
# machinery around it. (A function defined here would live in __main__.)
noop = job_type("bench.noop")(os.getpid)


def bare_round(redis: Redis, jobs: int, worker_class: type[Worker] | type[SimpleWorker]) -> float:
    queue = Queue("bench-bare", connection=redis, serializer=SERIALIZER)
    started = time.perf_counter()
    for _ in range(jobs):
        queue.enqueue(noop)
    worker_class([queue], connection=redis, serializer=SERIALIZER).work(
        burst=True, logging_level="WARNING"
    )
    return jobs / (time.perf_counter() - started)


def nexus_round(
    app_redis: Redis, jobs: int, worker_class: type[NexusWorker] | type[NexusSimpleWorker]
) -> float:
    app = create_app(load_settings().model_copy(update={"redis_url": app_redis_url(app_redis)}))
    with app.app_context():
        sessions = get_database().sessionmaker
        queues = get_queues()
        started = time.perf_counter()
        for _ in range(jobs):
            with sessions() as session, session.begin():
                services.enqueue_with(
                    session=session, queues=queues, sessions=sessions, name="bench.noop"
                )
    worker = worker_class(queues.ordered, connection=queues.default.connection, app=app)
    worker.work(burst=True, logging_level="WARNING")
    rate = jobs / (time.perf_counter() - started)
    with app.app_context(), get_database().sessionmaker() as session, session.begin():
        finished = session.scalar(
            select(func.count()).where(Job.name == "bench.noop", Job.status == "finished")
        )
        session.execute(delete(Job).where(Job.name == "bench.noop"))
    if finished != jobs:  # a rate of jobs that did not run would be a lie
        raise SystemExit(f"only {finished} of {jobs} jobs finished: is another worker on db 14?")
    return rate


def app_redis_url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def bench_redis_url() -> str:
    """REDIS_URL with database 14: make dev's worker (database 0) must not take the jobs."""
    # Redis.from_url(url, db=14) would keep the URL's own database.
    parts = urllib.parse.urlsplit(os.environ["REDIS_URL"])
    return urllib.parse.urlunsplit(parts._replace(path="/14"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Another worker's relay shares the jobs table: it would re-deliver these
    # rows to its own Redis database and fail them there.
    others = Worker.all(connection=Redis.from_url(os.environ["REDIS_URL"]))
    if others:
        raise SystemExit(
            f"{len(others)} worker(s) serve {os.environ['REDIS_URL']} (make dev's?): stop "
            "them first; their relay would take this benchmark's jobs"
        )
    redis = Redis.from_url(bench_redis_url())
    redis.flushdb()
    sides: dict[str, Callable[[], float]] = {
        "bare fork": lambda: bare_round(redis, args.jobs, Worker),
        "nexus fork": lambda: nexus_round(redis, args.jobs, NexusWorker),
        "bare simple": lambda: bare_round(redis, args.jobs, SimpleWorker),
        "nexus simple": lambda: nexus_round(redis, args.jobs, NexusSimpleWorker),
    }
    rates: dict[str, list[float]] = {side: [] for side in sides}
    for round_number in range(args.rounds):
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for side in order:
            rates[side].append(sides[side]())
    redis.flushdb()
    median = {side: statistics.median(runs) for side, runs in rates.items()}
    for side, rate in median.items():
        print(f"{side:<14} median {rate:7.1f} jobs/s  ({args.rounds} rounds of {args.jobs})")
    for mode in ("fork", "simple"):
        print(f"ratio nexus/bare, {mode}: {median[f'nexus {mode}'] / median[f'bare {mode}']:.2f}")


if __name__ == "__main__":
    main()
