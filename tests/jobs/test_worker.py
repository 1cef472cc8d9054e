"""The worker process: only registered jobs run; SIGTERM drains the running job, exit 0."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus

from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import SERIALIZER, get_queues
from nexus.jobs import canary
from nexus.jobs.ping import send_ping
from nexus.jobs.worker import NexusWorker
from tests.support import start_worker, stop_worker, wait_for


def test_a_job_nexus_did_not_enqueue_is_refused_not_run(
    make_app: Callable[..., Flask],
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    # Anyone who can write to Redis can queue a job naming any importable
    # function; RQ would import and call it.
    app = make_app(database_url=fresh_database)
    target = tmp_path / "made-by-a-stranger"
    with app.app_context():
        queue = get_queues().default
        stranger = queue.enqueue("os.mkdir", str(target))
        # A registered job's function, but pushed without a jobs row.
        rowless = queue.enqueue("nexus.jobs.canary.canary", 0, "2026-01-01T00:00:00+00:00")
    worker = start_worker(subprocess_env(fresh_database, NEXUS_LOG_FORMAT="json"))
    try:
        wait_for(
            lambda: (
                {stranger.get_status(refresh=True), rowless.get_status(refresh=True)}
                == {JobStatus.FAILED}
            ),
            timeout=30,
        )
        # The worker carries on, and still answers the ping (a job without a row).
        with app.app_context():
            assert send_ping(get_queues().high, timeout=30).answer["pong"] is True
    finally:
        output = stop_worker(worker)
    assert not target.exists()
    assert worker.returncode == 0, output
    refused = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"jobs.refused"' in line
    ]
    assert {(r["job_id"], r["function"]) for r in refused} == {
        (stranger.id, "os.mkdir"),
        (rowless.id, "nexus.jobs.canary.canary"),
    }
    assert all(r["level"] == "error" for r in refused)
    failed = Job.fetch(stranger.id, connection=redis, serializer=SERIALIZER)
    assert "not a registered job type" in (failed.latest_result().exc_string or "")
    assert stranger.id in get_queues_failed(app)


def get_queues_failed(app: Flask) -> list[str]:
    with app.app_context():
        return list(get_queues().default.failed_job_registry.get_job_ids())


def _enqueue_sleep(app: Flask, seconds: float) -> Job:
    """A canary (a registered job that sleeps), as RQ sees it."""
    with app.app_context():
        sessions = get_database().sessionmaker
        with sessions() as session, session.begin():
            row = canary.enqueue_canary(
                session=session, queues=get_queues(), sessions=sessions, seconds=seconds
            )
        return Job.fetch(str(row.id), connection=get_queues().default.connection)


def test_sigterm_lets_the_running_job_finish_then_exits_0(
    make_app: Callable[..., Flask],
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    job = _enqueue_sleep(make_app(database_url=fresh_database), 3)
    worker = start_worker(subprocess_env(fresh_database))
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert "draining, the running job has 60 s to finish" in output


def test_a_job_outliving_the_grace_period_is_stopped_and_the_worker_exits_0(
    make_app: Callable[..., Flask],
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    job = _enqueue_sleep(make_app(database_url=fresh_database), 60)
    worker = start_worker(subprocess_env(fresh_database, NEXUS_WORKER_SHUTDOWN_GRACE="1"))
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    finally:
        # Killed (and the test failed) if it waited for the 60 s job.
        output = stop_worker(worker, timeout=30)
    assert worker.returncode == 0, output
    assert job.get_status(refresh=True) != JobStatus.FINISHED
    assert "shutdown grace expired" in output


def test_killing_a_horse_still_in_the_workers_process_group_spares_the_group(
    app: Flask, redis: Redis
) -> None:
    # A horse killed before it has left the worker's process group (it does
    # so first thing after the fork): RQ's group kill would take the worker,
    # and here the test run, down with it.
    stand_in = subprocess.Popen(["sleep", "60"])  # in our process group, like a fresh horse
    try:
        with app.app_context():
            worker = NexusWorker(get_queues().ordered, connection=redis, app=app)
        worker._horse_pid = stand_in.pid
        worker.kill_horse()
        assert stand_in.wait(timeout=10) == -signal.SIGKILL
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()
