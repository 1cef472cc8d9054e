"""``flask --app nexus jobs ...``: canary batches through a real worker, list, retry, cancel."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from nexus.audit.models import AuditLog
from nexus.infrastructure.database import get_database
from tests.jobs.test_crash import _enqueue_canary, _job
from tests.support import FLASK, run, start_worker, stop_worker, wait_for


@pytest.fixture
def env(subprocess_env: Callable[..., dict[str, str]], fresh_database: str) -> dict[str, str]:
    return subprocess_env(fresh_database)


@pytest.fixture
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(env)
    yield process
    stop_worker(process)


def test_canary_batch_runs_every_canary_exactly_once(
    durable: Flask, env: dict[str, str], worker: subprocess.Popen[bytes]
) -> None:
    result = run([*FLASK, "jobs", "canary", "--count", "40", "--concurrency", "4"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"40 canaries in [\d.]+ s \([\d.]+ jobs/s\): 40 finished; runs per job: 40 x 1;",
        result.stdout,
    ), result.stdout
    with durable.app_context(), get_database().sessionmaker() as session:
        audited = session.scalars(select(AuditLog).where(AuditLog.action == "jobs.canary")).one()
    assert audited.meta == {"count": 40, "concurrency": 4, "seconds": 0.0}
    assert audited.actor_role == "cli"


def test_canary_batch_without_a_worker_fails_and_says_so(env: dict[str, str]) -> None:
    result = run([*FLASK, "jobs", "canary", "--count", "2", "--timeout", "1"], env)
    assert result.returncode == 1
    assert "2 queued" in result.stdout
    assert "not every canary finished exactly once" in result.stderr


def test_list_cancel_and_retry(durable: Flask, env: dict[str, str]) -> None:
    job_id = _enqueue_canary(durable, seconds=0)  # no worker: it stays queued
    listed = run([*FLASK, "jobs", "list", "--status", "queued"], env)
    assert listed.returncode == 0
    assert str(job_id) in listed.stdout
    assert "jobs.canary" in listed.stdout

    canceled = run([*FLASK, "jobs", "cancel", str(job_id)], env)
    assert canceled.stdout.strip() == f"{job_id} canceled"
    assert _job(durable, job_id).status == "canceled"
    again = run([*FLASK, "jobs", "cancel", str(job_id)], env)
    assert again.returncode == 1
    assert "already ended (canceled)" in again.stderr

    retried = run([*FLASK, "jobs", "retry", str(job_id)], env)
    assert retried.stdout.strip() == f"{job_id} queued"
    worker = start_worker(env)
    try:
        wait_for(lambda: _job(durable, job_id).status == "finished", timeout=30)
    finally:
        stop_worker(worker)
    missing = run([*FLASK, "jobs", "retry", "00000000-0000-0000-0000-000000000000"], env)
    assert (missing.returncode, "no such job" in missing.stderr) == (1, True)
    bad = run([*FLASK, "jobs", "list", "--status", "exploded"], env)
    assert bad.returncode == 2  # click's usage error
