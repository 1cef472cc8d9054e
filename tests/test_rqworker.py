"""`rq worker -w nexus.rqworker.Worker`: RQ's own command runs Nexus jobs inside the app."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from redis import Redis

from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import get_queues
from nexus.jobs import canary, services
from tests.support import REPO_ROOT


def test_rq_worker_command_runs_a_canary_and_records_it(
    make_app: Callable[..., Flask],
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    redis: Redis,
) -> None:
    app = make_app(database_url=fresh_database)
    with app.app_context():
        sessions = get_database().sessionmaker
        with sessions() as session, session.begin():
            job = canary.enqueue_canary(
                session=session, queues=get_queues(), sessions=sessions, seconds=0
            )
        queue_names = [queue.name for queue in get_queues().ordered]
        redis_url = app.extensions["nexus.settings"].redis_url
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "worker", "--burst", "-w",
         "nexus.rqworker.Worker", "--url", redis_url, *queue_names],
        env=subprocess_env(fresh_database),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with app.app_context(), get_database().sessionmaker() as session:
        row = services.get_job(session, job.id)
        assert row is not None
        assert row.status == "finished"
        assert row.attempts == 1  # recorded by the Nexus worker, not bare RQ


def test_rq_worker_with_a_bad_configuration_names_the_variable(
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    env = subprocess_env("sqlite:///nope.db")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rq"), "worker", "--burst", "-w",
         "nexus.rqworker.Worker", "--url", env["REDIS_URL"]],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "DATABASE_URL: driver 'sqlite' is not supported" in result.stderr
    assert "Traceback" not in result.stderr
