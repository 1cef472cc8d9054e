"""``NEXUS_WORKER_MODE=simple``: jobs run in the worker process, recorded and recovered alike.

Real ``flask --app nexus worker`` processes on a fresh database, the
abandoned-job threshold lowered to 6 s (heartbeats every second), as in
``test_crash``. No fork per job: nothing here has a work horse to find.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
from flask import Flask
from redis import Redis

from tests.jobs.test_crash import ABANDONED, _enqueue_canary, _job, _wait_idle
from tests.support import FLASK, start_worker, stop_worker, stop_workers, wait_for


@pytest.fixture
def env(subprocess_env: Callable[..., dict[str, str]], fresh_database: str) -> dict[str, str]:
    return subprocess_env(
        fresh_database, NEXUS_WORKER_MODE="simple", NEXUS_ABANDONED_JOB_SECONDS=ABANDONED
    )


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    workers: list[subprocess.Popen[bytes]] = []

    def start(**extra: str) -> subprocess.Popen[bytes]:
        worker = start_worker({**env, **extra})
        workers.append(worker)
        return worker

    yield start
    stop_workers(workers)


def test_a_canary_batch_runs_every_canary_once_without_forking(
    durable: Flask, redis: Redis, env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn()
    _wait_idle(redis, worker)
    forked: set[int] = set()
    result = subprocess.Popen(
        [*FLASK, "jobs", "canary", "--count", "40", "--concurrency", "4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while result.poll() is None:  # watch for work horses while the batch runs
        forked.update(child.pid for child in psutil.Process(worker.pid).children())
        time.sleep(0.01)
    out, err = result.communicate()
    assert result.returncode == 0, out + err
    assert re.search(r"40 finished; runs per job: 40 x 1;", out), out
    # The only child a simple worker has is RQ's scheduler.
    assert len(forked) <= 1


def test_a_job_longer_than_the_abandoned_threshold_is_not_run_twice(
    durable: Flask, redis: Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # The main thread runs the job; without the heartbeat thread the row
    # would go stale after 6 s and the reconciler would start it again.
    worker = spawn()
    _wait_idle(redis, worker)
    job_id = _enqueue_canary(durable, seconds=10)
    done = wait_for(lambda: (job := _job(durable, job_id)).status == "finished" and job, timeout=60)
    assert done.attempts == 1
    assert done.reason is None


def test_kill_9_mid_job_then_a_restart_retries_it(
    durable: Flask, redis: Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn()
    _wait_idle(redis, worker)
    job_id = _enqueue_canary(durable, seconds=4)
    wait_for(lambda: _job(durable, job_id).status == "started", timeout=30)
    worker.kill()  # the job dies with the worker: no handler runs
    worker.communicate()
    assert _job(durable, job_id).status == "started"
    spawn()  # the supervisor's restart
    done = wait_for(
        lambda: (job := _job(durable, job_id)).status in ("finished", "failed") and job,
        timeout=90,
    )
    assert (done.status, done.attempts) == ("finished", 2)


def test_sigterm_lets_the_running_job_finish_then_exits_0(
    durable: Flask, redis: Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn()
    _wait_idle(redis, worker)
    job_id = _enqueue_canary(durable, seconds=3)
    wait_for(lambda: _job(durable, job_id).status == "started", timeout=30)
    output = stop_worker(worker)
    assert worker.returncode == 0, output
    assert _job(durable, job_id).status == "finished"


def test_a_job_outliving_the_grace_period_is_stopped_and_retried_later(
    durable: Flask, redis: Redis, spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = spawn(NEXUS_WORKER_SHUTDOWN_GRACE="1")
    _wait_idle(redis, worker)
    job_id = _enqueue_canary(durable, seconds=60)
    wait_for(lambda: _job(durable, job_id).status == "started", timeout=30)
    output = stop_worker(worker, timeout=30)  # killed (and failing) if it waited 60 s
    assert worker.returncode == 0, output
    assert "shutdown grace expired" in output
    assert _job(durable, job_id).status != "finished"
    # Not lost: the stopped attempt is retried (at once, or once abandoned).
    spawn(NEXUS_WORKER_SHUTDOWN_GRACE="1")  # so that the teardown does not wait 60 s
    retried = wait_for(lambda: (job := _job(durable, job_id)).attempts == 2 and job, timeout=90)
    assert retried.status in ("started", "finished")
