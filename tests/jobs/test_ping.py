"""The example job, end to end: in-process, through a real worker process, and unanswered."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

import pytest
from flask import Flask
from redis import Redis
from rq import Queue
from sqlalchemy.orm import Session

from nexus.infrastructure.queue import get_queues
from nexus.jobs.ping import PingError, ping, send_ping
from nexus.jobs.worker import NexusSimpleWorker
from tests.support import FLASK, capture_logs, run, start_worker, stop_worker, wait_for


def test_ping_answers_from_the_database(app: Flask, db_session: Session) -> None:
    with app.app_context():
        answer = ping(123.5)
    assert answer["pong"] is True
    assert answer["sent_at"] == 123.5
    assert answer["postgres"][0].isdigit()


def test_worker_runs_jobs_in_the_app_with_job_log_context(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        queue: Queue = get_queues().default
    job = queue.enqueue(ping, 1.0)
    worker = NexusSimpleWorker([queue], connection=redis, app=app)
    with capture_logs() as logs:
        assert worker.work(burst=True) is True
    job.refresh()
    assert job.is_finished
    assert job.return_value()["pong"] is True
    job_lines = [entry for entry in logs if entry.get("job_id") == job.id]
    assert job_lines
    assert all(entry["job_name"] == "nexus.jobs.ping.ping" for entry in job_lines)


def test_jobs_are_stored_as_json_not_pickle(app: Flask, redis: Redis) -> None:
    with app.app_context():
        job = get_queues().default.enqueue(ping, 1.0)
    raw = redis.hget(f"rq:job:{job.id}", "data")
    assert raw is not None
    func_name, _instance, args, kwargs = json.loads(zlib.decompress(raw))  # RQ compresses
    assert (func_name, args, kwargs) == ("nexus.jobs.ping.ping", [1.0], {})


def test_unanswered_ping_times_out_and_is_withdrawn(app: Flask, redis: Redis) -> None:
    with app.app_context():
        queue = get_queues().default
        with pytest.raises(PingError, match=r"No worker answered within 0\.5 s"):
            send_ping(queue, timeout=0.5)
        assert queue.count == 0  # a worker started later will not run a stale ping


def test_ping_through_a_real_worker_process(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], redis: Redis
) -> None:
    env = subprocess_env(fresh_database)
    worker = start_worker(env)
    try:
        wait_for(lambda: redis.scard("rq:workers") > 0, timeout=30)
        result = run([*FLASK, "jobs", "ping", "--timeout", "20"], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("pong from worker ")
        assert "(PostgreSQL " in result.stdout
        assert " ms [job " in result.stdout
    finally:
        output = stop_worker(worker)
    assert "Successfully completed nexus.jobs.ping.ping" in output


def test_ping_command_fails_clearly_without_a_worker(app: Flask, redis: Redis) -> None:
    result = app.test_cli_runner().invoke(args=["jobs", "ping", "--timeout", "0.3"])
    assert result.exit_code == 1
    assert "No worker answered within 0.3 s" in result.output
