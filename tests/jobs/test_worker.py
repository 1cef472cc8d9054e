"""The worker process: SIGTERM drains the running job within the grace period, exit 0."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus

from nexus.infrastructure.queue import get_queues
from tests.support import FLASK, REPO_ROOT, wait_for


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*FLASK, "worker"], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


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
    worker = _start_worker(subprocess_env(fresh_database))
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:  # pragma: no cover - only when the test fails
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output.decode()
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert b"draining, the running job has 60 s to finish" in output


def test_a_job_outliving_the_grace_period_is_stopped_and_the_worker_exits_0(
    app: Flask,
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    job = _enqueue_sleep(app, 60)
    worker = _start_worker(subprocess_env(fresh_database, NEXUS_WORKER_SHUTDOWN_GRACE="1"))
    try:
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=30)
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = worker.communicate(timeout=30)
        stopped_after = time.monotonic() - started
    finally:
        if worker.poll() is None:  # pragma: no cover - only when the test fails
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output.decode()
    assert stopped_after < 30  # not the 60 s the job wanted
    assert job.get_status(refresh=True) != JobStatus.FINISHED
    assert b"shutdown grace expired" in output
