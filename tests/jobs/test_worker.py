"""The worker process: SIGTERM drains the running job within the grace period, exit 0."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus

from nexus.infrastructure.queue import get_queues
from nexus.jobs.worker import NexusWorker
from tests.support import start_worker, stop_worker, wait_for


def _enqueue_sleep(app: Flask, seconds: float) -> Job:
    with app.app_context():
        # Any importable function is a job; time.sleep stands in for real work.
        return get_queues().default.enqueue("time.sleep", seconds, job_timeout=120)


def test_sigterm_lets_the_running_job_finish_then_exits_0(
    app: Flask,
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    job = _enqueue_sleep(app, 3)
    worker = start_worker(subprocess_env(fresh_database))
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert "draining, the running job has 60 s to finish" in output


def test_a_job_outliving_the_grace_period_is_stopped_and_the_worker_exits_0(
    app: Flask,
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    job = _enqueue_sleep(app, 60)
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
