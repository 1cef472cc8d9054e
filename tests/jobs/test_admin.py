"""Admin job endpoints: list with filters and cursors, retry, cancel; all audited, all refusable."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job as RQJob
from rq.job import JobStatus as RQJobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.audit.models import AuditLog
from nexus.infrastructure.queue import SERIALIZER
from nexus.jobs import registry
from tests.accounts_fixtures import Tokens
from tests.api.test_errors import assert_problem
from tests.jobs.test_durable import enqueue, row, run_worker
from tests.support import start_worker, stop_worker, wait_for


@registry.job_type("tests.unique_failure", unique=True)
def unique_failure(key: str) -> None:
    raise RuntimeError(f"{key} is broken")


def _list(client: FlaskClient, admin: Tokens, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/admin/jobs{query}", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_list_filters_and_pages_newest_first(
    client: FlaskClient, admin: Tokens, app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        ids = [enqueue("tests.add", a=n, b=n).id for n in range(5)]
        failing = enqueue("tests.explode", secret="s3cret")
    run_worker(app, redis)
    failed = _list(client, admin, "?status=failed")["data"]
    assert [job["id"] for job in failed] == [str(failing.id)]
    assert failed[0]["error"] == {"type": "ValueError", "message": "cannot handle 6 characters"}
    assert failed[0]["queue"] == "default"
    assert failed[0]["arguments"] == {"secret": "s3cret"}  # admins see what ran

    seen: list[str] = []
    cursor = None
    while True:
        body = _list(
            client, admin, "?name=tests.add&limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        seen += [job["id"] for job in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    # Every job once, none twice, across three pages (2 + 2 + 1).
    assert sorted(seen) == sorted(str(job_id) for job_id in ids)
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    "query", ["?status=exploded", "?limit=0", "?limit=201", "?cursor=bm9wZQ", "?name="]
)
def test_list_refuses_bad_queries(client: FlaskClient, admin: Tokens, query: str) -> None:
    assert_problem(
        client.get(f"/api/v1/admin/jobs{query}", headers=admin.headers), 400, "E_INVALID_REQUEST"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/admin/jobs"),
        ("post", f"/api/v1/admin/jobs/{uuid.uuid4()}/retry"),
        ("post", f"/api/v1/admin/jobs/{uuid.uuid4()}/cancel"),
    ],
)
def test_admin_job_endpoints_refuse_members_and_strangers(
    client: FlaskClient, member: Tokens, method: str, path: str
) -> None:
    assert_problem(getattr(client, method)(path, headers=member.headers), 403, "E_FORBIDDEN")
    assert_problem(getattr(client, method)(path), 401, "E_UNAUTHENTICATED")


def test_retry_runs_a_failed_job_again_and_is_audited(
    client: FlaskClient, admin: Tokens, app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.explode", secret="x")
    run_worker(app, redis)
    response = client.post(f"/api/v1/admin/jobs/{job.id}/retry", headers=admin.headers)
    assert response.status_code == 200
    retried = response.get_json()["data"]
    assert (retried["status"], retried["error"], retried["max_attempts"]) == ("queued", None, 2)
    run_worker(app, redis)
    again = row(db_session, job.id)
    assert (again.status, again.attempts) == ("failed", 2)  # it ran, and failed again
    audited = db_session.scalars(select(AuditLog).where(AuditLog.action == "jobs.retry")).one()
    assert audited.target_id == str(job.id)


def test_retry_refuses_jobs_that_did_not_fail(
    client: FlaskClient, admin: Tokens, app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=1)
    problem = assert_problem(
        client.post(f"/api/v1/admin/jobs/{job.id}/retry", headers=admin.headers), 409, "E_CONFLICT"
    )
    assert "queued" in problem["detail"]
    assert_problem(
        client.post(f"/api/v1/admin/jobs/{uuid.uuid4()}/retry", headers=admin.headers),
        404,
        "E_NOT_FOUND",
    )


def test_cancel_stops_a_queued_job_from_running_and_is_audited(
    client: FlaskClient, admin: Tokens, app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=1)
    response = client.post(f"/api/v1/admin/jobs/{job.id}/cancel", headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["data"]["status"] == "canceled"
    rq_job = RQJob.fetch(str(job.id), connection=redis, serializer=SERIALIZER)
    assert rq_job.get_status() == RQJobStatus.CANCELED
    run_worker(app, redis)
    canceled = row(db_session, job.id)
    assert (canceled.status, canceled.attempts) == ("canceled", 0)
    assert db_session.scalars(select(AuditLog).where(AuditLog.action == "jobs.cancel")).one()
    # An ended job cannot be canceled, but a canceled one can be retried.
    assert_problem(
        client.post(f"/api/v1/admin/jobs/{job.id}/cancel", headers=admin.headers),
        409,
        "E_CONFLICT",
    )
    assert (
        client.post(f"/api/v1/admin/jobs/{job.id}/retry", headers=admin.headers).status_code == 200
    )
    run_worker(app, redis)
    assert row(db_session, job.id).status == "finished"


def test_retry_refuses_a_unique_job_whose_twin_is_active(
    client: FlaskClient, admin: Tokens, app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        failed = enqueue("tests.unique_failure", key="k1")
    run_worker(app, redis)
    with app.app_context():
        twin = enqueue("tests.unique_failure", key="k1")  # allowed: the first has ended
    assert twin.id != failed.id
    problem = assert_problem(
        client.post(f"/api/v1/admin/jobs/{failed.id}/retry", headers=admin.headers),
        409,
        "E_CONFLICT",
    )
    assert problem["detail"] == "An identical job is already waiting or running."
    assert row(db_session, failed.id).status == "failed"  # unchanged


def test_queues_show_rqs_backlog_beside_the_rows_waiting(
    client: FlaskClient,
    admin: Tokens,
    member: Tokens,
    app: Flask,
    db_session: Session,
    redis: Redis,
) -> None:
    with app.app_context():
        for n in range(3):
            enqueue("tests.add", a=n, b=n)
    response = client.get("/api/v1/admin/queues", headers=admin.headers)
    assert response.status_code == 200
    queues = response.get_json()["data"]
    assert [(q["priority"], q["name"]) for q in queues] == [
        ("high", "high"), ("default", "default"), ("low", "low"),
    ]  # fmt: skip
    default = queues[1]
    assert (default["waiting_in_rq"], default["rows_waiting"], default["rows_running"]) == (3, 3, 0)
    assert default["oldest_waiting_seconds"] >= 0
    assert queues[0]["oldest_waiting_seconds"] is None  # nothing waits on high

    run_worker(app, redis)
    drained = client.get("/api/v1/admin/queues", headers=admin.headers).get_json()["data"][1]
    assert (drained["waiting_in_rq"], drained["rows_waiting"]) == (0, 0)
    assert drained["oldest_waiting_seconds"] is None

    assert_problem(client.get("/api/v1/admin/queues", headers=member.headers), 403, "E_FORBIDDEN")
    assert_problem(client.get("/api/v1/admin/queues"), 401, "E_UNAUTHENTICATED")


def test_workers_lists_the_live_worker_and_what_it_runs(
    client: FlaskClient,
    admin: Tokens,
    redis: Redis,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    assert client.get("/api/v1/admin/workers", headers=admin.headers).get_json()["data"] == []
    worker = start_worker(subprocess_env(fresh_database))
    try:

        def listed() -> list[dict[str, Any]]:
            answer: list[dict[str, Any]] = client.get(
                "/api/v1/admin/workers", headers=admin.headers
            ).get_json()["data"]
            return answer

        wait_for(lambda: len(listed()) == 1, timeout=30, interval=0.2)
        [seen] = listed()
        assert seen["pid"] == worker.pid
        assert seen["queues"] == ["high", "default", "low"]
        assert seen["state"] in ("idle", "started", "busy")
        assert seen["current_job_id"] is None
        assert seen["last_heartbeat"] is not None
    finally:
        stop_worker(worker)
    # A worker that stops leaves the registry.
    assert client.get("/api/v1/admin/workers", headers=admin.headers).get_json()["data"] == []
