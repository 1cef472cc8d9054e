"""Real workers killed for real: ``kill -9`` on a worker, on its work horse, and a cancel mid-run.

Each test runs ``flask --app nexus worker`` processes on a fresh database
and enqueues canaries through an app on that database. The abandoned-job
threshold is lowered to 6 s (heartbeats every second) so that a recovery
takes seconds; nothing here asserts a duration.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
import pytest
from flask import Flask
from redis import Redis
from rq import Worker
from rq.job import Job as RQJob
from sqlalchemy import func, update

from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import SERIALIZER, get_queues
from nexus.jobs import canary, services
from nexus.jobs.models import Job
from nexus_dev.local_services import RedisServer, stop_process
from tests.support import start_worker, stop_worker, stop_workers, wait_for

ABANDONED = "6"


@pytest.fixture
def spawn(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    workers: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = subprocess_env(fresh_database, NEXUS_ABANDONED_JOB_SECONDS=ABANDONED)
        worker = start_worker(env)
        workers.append(worker)
        return worker

    yield start
    stop_workers(workers)


def _enqueue_canary(app: Flask, seconds: float) -> uuid.UUID:
    with app.app_context():
        sessions = get_database().sessionmaker
        with sessions() as session, session.begin():
            job = canary.enqueue_canary(
                session=session, queues=get_queues(), sessions=sessions, seconds=seconds
            )
            return job.id


def _job(app: Flask, job_id: uuid.UUID) -> Job:
    with app.app_context(), get_database().sessionmaker() as session:
        job = services.get_job(session, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _wait_idle(redis: Redis, worker: subprocess.Popen[bytes]) -> None:
    def idle() -> bool:
        return any(w.pid == worker.pid and w.get_state() == "idle" for w in Worker.all(redis))

    wait_for(idle, timeout=30)


def _horse(worker: subprocess.Popen[bytes], before: set[int]) -> psutil.Process:
    """The work horse: the child the worker forked for the job (RQ's scheduler was there before)."""

    def forked() -> psutil.Process | None:
        fresh = [p for p in psutil.Process(worker.pid).children() if p.pid not in before]
        return fresh[0] if fresh else None

    return wait_for(forked, timeout=30)


def _children(worker: subprocess.Popen[bytes]) -> set[int]:
    return {p.pid for p in psutil.Process(worker.pid).children()}


@dataclass
class Running:
    """A worker process running a canary, and the canary's work horse."""

    worker: subprocess.Popen[bytes]
    horse: psutil.Process
    job_id: uuid.UUID


def _run_canary(
    durable: Flask,
    redis: Redis,
    spawn: Callable[[], subprocess.Popen[bytes]],
    *,
    seconds: float,
) -> Running:
    worker = spawn()
    _wait_idle(redis, worker)
    before = _children(worker)
    job_id = _enqueue_canary(durable, seconds=seconds)
    horse = _horse(worker, before)
    wait_for(lambda: _job(durable, job_id).status == "started", timeout=30)
    return Running(worker, horse, job_id)


def test_kill_9_on_worker_and_horse_then_a_restart_retries_the_job(
    durable: Flask, redis: Redis, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    running = _run_canary(durable, redis, spawn, seconds=4)
    worker, horse, job_id = running.worker, running.horse, running.job_id
    for process in (worker, horse):
        process.kill()  # SIGKILL: no handler runs, nothing is reported
    worker.communicate()
    assert _job(durable, job_id).status == "started"  # what the dead worker left behind

    spawn()  # the restart (make dev's supervisor, a container restart)
    done = wait_for(
        lambda: (job := _job(durable, job_id)).status in ("finished", "failed") and job,
        timeout=90,
    )
    assert (done.status, done.attempts) == ("finished", 2)


def test_kill_9_on_the_horse_alone_is_reported_by_its_worker_and_retried(
    durable: Flask, redis: Redis, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    running = _run_canary(durable, redis, spawn, seconds=3)
    worker, horse, job_id = running.worker, running.horse, running.job_id
    horse.send_signal(signal.SIGKILL)
    # The living worker records the dead attempt at once and RQ retries it.
    retried = wait_for(lambda: (job := _job(durable, job_id)).attempts == 2 and job, timeout=60)
    assert retried.reason in ("abandoned", None)  # None once the retry has finished
    done = wait_for(lambda: (job := _job(durable, job_id)).status == "finished" and job, timeout=60)
    assert done.attempts == 2
    assert worker.poll() is None  # the worker itself carried on


def test_kill_9_on_the_worker_takes_its_horse_with_it(
    durable: Flask, redis: Redis, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    running = _run_canary(durable, redis, spawn, seconds=60)
    worker, horse = running.worker, running.horse
    worker.kill()
    worker.communicate()
    # An orphaned horse would run on, unsupervised, beside the retry.
    wait_for(lambda: not horse.is_running() or horse.status() == psutil.STATUS_ZOMBIE, timeout=10)


def test_cancel_stops_a_running_job_and_the_worker_carries_on(
    durable: Flask, redis: Redis, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    running = _run_canary(durable, redis, spawn, seconds=60)
    worker, job_id = running.worker, running.job_id
    with durable.app_context(), get_database().sessionmaker() as session, session.begin():
        services.cancel(session, job_id, redis=get_queues().default.connection)
    _wait_idle(redis, worker)  # the horse was killed; the worker took the next job
    canceled = _job(durable, job_id)
    assert (canceled.status, canceled.attempts, canceled.result) == ("canceled", 1, None)
    # And it still works.
    next_id = _enqueue_canary(durable, seconds=0)
    assert wait_for(lambda: _job(durable, next_id).status == "finished", timeout=30)
    assert worker.poll() is None


def test_a_cancel_rq_never_heard_of_stops_the_job_at_its_next_heartbeat(
    durable: Flask, redis: Redis, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    running = _run_canary(durable, redis, spawn, seconds=60)
    worker, job_id = running.worker, running.job_id
    # Canceled while Redis was unreachable: no stop command was ever sent.
    with durable.app_context(), get_database().sessionmaker() as session, session.begin():
        session.execute(
            update(Job).where(Job.id == job_id).values(status="canceled", ended_at=func.now())
        )
    _wait_idle(redis, worker)  # within a heartbeat (1 s here), not 60 s
    assert _job(durable, job_id).status == "canceled"
    assert worker.poll() is None


def test_redis_killed_and_wiped_mid_job_the_job_finishes_once_and_the_worker_carries_on(
    make_app: Callable[..., Flask],
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    own_redis: tuple[RedisServer, subprocess.Popen[bytes]],
) -> None:
    server, process = own_redis
    app = make_app(database_url=fresh_database, redis_url=server.url())
    worker = start_worker(subprocess_env(fresh_database, REDIS_URL=server.url()))
    try:
        job_id = _enqueue_canary(app, seconds=3)
        # Past RQ's own start-up writes (a Redis error there fails the
        # attempt before the job runs, which RQ then retries): mid-job.
        with app.app_context():
            redis = get_queues().default.connection
            wait_for(
                lambda: (
                    RQJob.fetch(str(job_id), connection=redis, serializer=SERIALIZER).get_status()
                    == "started"
                ),
                timeout=30,
            )
        time.sleep(0.5)
        stop_process(process, sig=signal.SIGKILL)  # Redis dies; it had no persistence
        restarted = subprocess.Popen(
            server.command(), stdout=subprocess.DEVNULL, start_new_session=True
        )
        try:
            server.wait_ready(process=restarted)
            done = wait_for(
                lambda: (job := _job(app, job_id)).status == "finished" and job, timeout=60
            )
            assert done.attempts == 1  # recorded in PostgreSQL while Redis was away
            # The worker is still the same process, and still takes jobs.
            assert worker.poll() is None
            next_id = _enqueue_canary(app, seconds=0)
            assert wait_for(lambda: _job(app, next_id).status == "finished", timeout=60)
        finally:
            stop_process(restarted)
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output


@contextlib.contextmanager
def _redis_back(server: RedisServer) -> Iterator[None]:
    """Start the (killed) Redis again for the block; kill it at the end."""
    restarted = subprocess.Popen(
        server.command(), stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        server.wait_ready(process=restarted)
        yield
    finally:
        stop_process(restarted)


def _canary_finishes(make_app: Callable[..., Flask], database: str, server: RedisServer) -> bool:
    """Enqueue a canary: did a worker finish it?"""
    app = make_app(database_url=database, redis_url=server.url())
    job_id = _enqueue_canary(app, seconds=0)
    return bool(wait_for(lambda: _job(app, job_id).status == "finished", timeout=60, raises=False))


def test_redis_down_for_seconds_the_scheduler_stops_with_one_json_record(
    make_app: Callable[..., Flask],
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    own_redis: tuple[RedisServer, subprocess.Popen[bytes]],
) -> None:
    server, process = own_redis
    env = subprocess_env(fresh_database, REDIS_URL=server.url(), NEXUS_LOG_FORMAT="json")
    worker = start_worker(env)
    redis = Redis.from_url(server.url())
    finished = False
    exited: int | None = None
    output = ""
    try:
        # RQ's scheduler runs in a child process of the worker, holding a lock per queue.
        wait_for(lambda: redis.exists("rq:scheduler-lock:default"), timeout=30)
        stop_process(process, sig=signal.SIGKILL)
        time.sleep(4)  # the scheduler polls Redis every second; let it find Redis gone
        # The worker itself reconnects and takes jobs again. It is stopped
        # while Redis is up: its maintenance pass may have started a new
        # scheduler, which would log its own end if Redis went away again.
        with _redis_back(server):
            try:
                finished = _canary_finishes(make_app, fresh_database, server)
                exited = worker.poll()
            finally:
                output = stop_worker(worker)
    finally:
        if worker.poll() is None:  # Redis did not come back
            output = stop_worker(worker)
        redis.close()
    assert exited is None, f"the worker exited ({exited}); it said:\n{output[-6000:]}"
    assert finished, f"the canary did not finish; the worker said:\n{output[-6000:]}"
    lines = [line for line in output.splitlines() if line.strip()]
    raw = [line for line in lines if not line.startswith("{")]
    assert not raw, output[-6000:]  # no raw traceback among them
    records = [json.loads(line) for line in lines]
    stopped = [r for r in records if r["event"] == "jobs.scheduler_stopped"]
    assert len(stopped) == 1, output
    assert "ConnectionError" in stopped[0]["error"]


def test_a_worker_started_while_redis_is_down_waits_for_it_instead_of_exiting(
    make_app: Callable[..., Flask],
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    own_redis: tuple[RedisServer, subprocess.Popen[bytes]],
) -> None:
    # RQ's worker talks to Redis as it is built; a Redis still down when the
    # worker (re)starts its loop used to end the command with exit code 1.
    server, process = own_redis
    stop_process(process, sig=signal.SIGKILL)
    worker = start_worker(subprocess_env(fresh_database, REDIS_URL=server.url()))
    try:
        time.sleep(5)  # a few restart rounds with Redis down
        exited = worker.poll()
        with _redis_back(server):
            finished = _canary_finishes(make_app, fresh_database, server)
    finally:
        output = stop_worker(worker)
    assert exited is None, f"the worker exited ({exited}); it said:\n{output[-4000:]}"
    assert finished, output[-4000:]
    assert "worker.redis_lost" in output
