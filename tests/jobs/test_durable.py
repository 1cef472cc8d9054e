"""Durable jobs: the row and RQ agree, commits deliver, rollbacks do not, outcomes are kept."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import JobStatus as RQJobStatus
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from nexus.audit.models import AuditLog
from nexus.infrastructure.database import get_database, get_session, transaction
from nexus.infrastructure.queue import get_queues
from nexus.jobs import registry, services
from nexus.jobs.models import Job
from nexus.jobs.relay import Relay, RelayReport
from nexus.jobs.worker import NexusSimpleWorker
from nexus_dev.local_services import free_port
from tests.accounts_fixtures import Tokens
from tests.api.test_errors import assert_problem


@registry.job_type("tests.add")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@registry.job_type("tests.explode")
def explode(secret: str) -> None:
    raise ValueError(f"cannot handle {len(secret)} characters")


@registry.job_type("tests.flaky", retries=1, retry_intervals=(0,))
def flaky(counter_key: str) -> str:
    redis: Redis = Redis.from_url(_redis_url)
    attempt = int(redis.incr(counter_key))
    redis.close()
    if attempt == 1:
        raise ConnectionError("first attempt fails")
    return f"attempt {attempt}"


@registry.job_type("tests.slow", timeout=1)
def slow() -> None:
    time.sleep(5)


_redis_url = ""


@pytest.fixture(autouse=True)
def _remember_redis_url(app: Flask) -> None:
    global _redis_url  # noqa: PLW0603 - the flaky job runs where fixtures cannot reach
    _redis_url = app.extensions["nexus.settings"].redis_url


def enqueue(
    name: str,
    *,
    dedupe_key: str | None = None,
    delay: timedelta | None = None,
    **arguments: Any,
) -> Job:
    session = get_session()
    with transaction(session):
        return services.enqueue_with(
            session=session,
            queues=get_queues(),
            sessions=get_database().sessionmaker,
            name=name,
            arguments=arguments,
            dedupe_key=dedupe_key,
            delay=delay,
        )


def run_worker(app: Flask, redis: Redis) -> None:
    with app.app_context():
        queues = get_queues().ordered
    NexusSimpleWorker(queues, connection=redis, app=app).work(burst=True)


def row(db_session: Session, job_id: uuid.UUID) -> Job:
    db_session.expire_all()
    job = db_session.get(Job, job_id)
    assert job is not None
    return job


def test_commit_delivers_once_with_the_row_id(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=2, b=3)
        queue = get_queues().default
        assert queue.job_ids == [str(job.id)]  # RQ's id is the row id
        assert row(db_session, job.id).status == "queued"
        # Delivering again (a relay retry, say) adds nothing.
        assert services.deliver(job.id, queues=get_queues(), sessions=get_database().sessionmaker)
        assert queue.job_ids == [str(job.id)]
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.attempts, done.result) == ("finished", 1, {"sum": 5})
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.enqueued_at is not None


def test_nothing_is_delivered_before_commit_or_after_rollback(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    seen_before_commit: list[int] = []

    def enqueue_then_fail() -> None:
        session = get_session()
        with transaction(session):
            services.enqueue_with(
                session=session,
                queues=get_queues(),
                sessions=get_database().sessionmaker,
                name="tests.add",
                arguments={"a": 1, "b": 1},
            )
            seen_before_commit.append(get_queues().default.count)
            raise RuntimeError("the request failed")

    with app.app_context():
        with pytest.raises(RuntimeError):
            enqueue_then_fail()
        assert seen_before_commit == [0]  # not before the commit
        assert get_queues().default.count == 0  # nor after the rollback
    assert db_session.scalars(select(Job)).all() == []


def test_a_failure_keeps_type_and_message_not_the_traceback(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.explode", secret="hunter2")
    run_worker(app, redis)
    failed = row(db_session, job.id)
    assert (failed.status, failed.reason) == ("failed", "error")
    assert (failed.error_type, failed.error_message) == ("ValueError", "cannot handle 7 characters")
    assert failed.arguments == {"secret": "hunter2"}
    assert "Traceback" not in (failed.error_message or "")


def test_retries_are_counted_and_end_finished(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.flaky", counter_key=f"tests:flaky:{uuid.uuid4()}")
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.attempts, done.result) == ("finished", 2, "attempt 2")
    assert done.reason is None


def test_a_timeout_is_reported_as_such(app: Flask, db_session: Session, redis: Redis) -> None:
    with app.app_context():
        job = enqueue("tests.slow")
    run_worker(app, redis)
    timed_out = row(db_session, job.id)
    assert (timed_out.status, timed_out.reason) == ("failed", "timeout")
    assert timed_out.error_type == "rq.timeouts.JobTimeoutException"


def test_unknown_job_names_are_refused(app: Flask, db_session: Session) -> None:
    with app.app_context(), pytest.raises(registry.UnknownJobError):
        enqueue("os.system", command="true")


def test_arguments_must_be_json(app: Flask, db_session: Session) -> None:
    with app.app_context(), pytest.raises(TypeError):
        enqueue("tests.add", a=object(), b=1)


def test_redis_down_at_commit_leaves_the_row_pending_for_the_relay(
    make_joined_app: Callable[..., Flask], app: Flask, db_session: Session, client: FlaskClient
) -> None:
    down = make_joined_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with down.app_context():
        job = enqueue("tests.add", a=1, b=2)
    assert row(db_session, job.id).status == "pending"  # accepted, not lost
    with app.app_context():
        assert services.deliver(job.id, queues=get_queues(), sessions=get_database().sessionmaker)
    assert row(db_session, job.id).status == "queued"


def test_status_endpoint_owner_admin_and_strangers(
    client: FlaskClient,
    admin: Tokens,
    member: Tokens,
    login: Callable[..., Tokens],
    make_user: Callable[..., object],
    db_session: Session,
    redis: Redis,
) -> None:
    response = client.post("/api/v1/admin/jobs/canary", headers=admin.headers, json={"seconds": 0})
    assert response.status_code == 202
    job = response.get_json()["data"]
    assert (job["name"], job["status"], job["attempts"], job["error"]) == (
        "jobs.canary",
        "queued",
        0,
        None,
    )
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers).status_code == 200
    # A member who did not enqueue it cannot tell it exists.
    assert_problem(
        client.get(f"/api/v1/jobs/{job['id']}", headers=member.headers), 404, "E_NOT_FOUND"
    )
    assert_problem(
        client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=admin.headers), 404, "E_NOT_FOUND"
    )
    assert_problem(client.get(f"/api/v1/jobs/{job['id']}"), 401, "E_UNAUTHENTICATED")
    run_worker(client.application, redis)
    done = client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers).get_json()["data"]
    assert done["status"] == "finished"
    assert set(done["result"]) == {"queue_wait_ms", "run_ms", "worker_pid"}
    # RQ forgets (its TTLs expire); the status is still answered.
    redis.flushdb()
    again = client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers)
    assert again.status_code == 200
    assert again.get_json()["data"]["status"] == "finished"


@pytest.mark.parametrize("body", [{"seconds": -1}, {"seconds": 301}, {}, {"seconds": "soon"}])
def test_canary_validates(client: FlaskClient, admin: Tokens, body: dict[str, object]) -> None:
    response = client.post("/api/v1/admin/jobs/canary", headers=admin.headers, json=body)
    assert_problem(response, 400, "E_INVALID_REQUEST")


def test_canary_is_admin_only_and_audited(
    client: FlaskClient, admin: Tokens, member: Tokens, db_session: Session
) -> None:
    assert_problem(
        client.post("/api/v1/admin/jobs/canary", headers=member.headers, json={"seconds": 1}),
        403,
        "E_FORBIDDEN",
    )
    client.post("/api/v1/admin/jobs/canary", headers=admin.headers, json={"seconds": 1})
    audited = db_session.scalars(select(AuditLog).where(AuditLog.action == "jobs.canary")).one()
    assert audited.meta == {"seconds": 1}


def _age(db_session: Session, job_id: uuid.UUID, *, column: str) -> None:
    """Pretend the row is older than the relay's grace period."""
    statement = f"UPDATE jobs SET {column} = now() - interval '1 minute' WHERE id = :id"  # noqa: S608 - a column name of ours
    db_session.execute(text(statement), {"id": job_id})
    db_session.commit()


def test_relay_delivers_pending_rows_once_redis_is_back(
    make_joined_app: Callable[..., Flask], app: Flask, db_session: Session, redis: Redis
) -> None:
    down = make_joined_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with down.app_context():
        job = enqueue("tests.add", a=20, b=22)
    _age(db_session, job.id, column="created_at")
    # While Redis is still unreachable the relay reports it and keeps the row.
    assert Relay(down, with_schedules=False).run_once() == RelayReport(redis_down=True)
    assert row(db_session, job.id).status == "pending"
    report = Relay(app, with_schedules=False).run_once()
    assert report == RelayReport(delivered=1)
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.result, done.attempts) == ("finished", {"sum": 42}, 1)


def test_rows_redis_forgot_are_redelivered_as_lost(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=1)
    _age(db_session, job.id, column="enqueued_at")
    assert (
        Relay(app, with_schedules=False).run_once() == RelayReport()
    )  # RQ still has it: nothing to do
    redis.flushdb()  # Redis restarted without its data
    assert Relay(app, with_schedules=False).run_once() == RelayReport(lost=1)
    assert row(db_session, job.id).reason == "lost"
    with app.app_context():
        assert get_queues().default.job_ids == [str(job.id)]
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.result) == ("finished", {"sum": 2})
    assert done.reason is None  # the attempt that counts succeeded


def _taken_and_never_started(queue: Queue, job_id: str) -> None:
    # A worker moved it to its intermediate list and was killed before start.
    queue.connection.lrem(queue.key, 0, job_id)
    queue.connection.lpush(queue.intermediate_queue_key, job_id)


def _failed_by_rqs_clean_up(queue: Queue, job_id: str) -> None:
    # What RQ's maintenance does to such a job: fail it without running it.
    _taken_and_never_started(queue, job_id)
    job = queue.fetch_job(job_id)
    assert job is not None
    job.set_status(RQJobStatus.FAILED)
    queue.failed_job_registry.add(job, exc_string="Job was stuck in intermediate queue.")
    queue.connection.lrem(queue.intermediate_queue_key, 0, job_id)


@pytest.mark.parametrize("state", [_taken_and_never_started, _failed_by_rqs_clean_up])
def test_rows_rq_holds_but_will_never_run_are_redelivered_as_lost(
    app: Flask, db_session: Session, redis: Redis, state: Callable[[Queue, str], None]
) -> None:
    """The kill -9 fault test found it: the row said queued for ever."""
    with app.app_context():
        job = enqueue("tests.add", a=2, b=3)
        queue = get_queues().default
    _age(db_session, job.id, column="enqueued_at")
    state(queue, str(job.id))
    assert Relay(app, with_schedules=False).run_once() == RelayReport(lost=1)
    assert queue.job_ids == [str(job.id)]
    assert redis.llen(queue.intermediate_queue_key) == 0
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.result, done.attempts) == ("finished", {"sum": 5}, 1)
    assert Relay(app, with_schedules=False).run_once() == RelayReport()


def test_relay_thread_backs_off_and_stops(make_app: Callable[..., Flask], app: Flask) -> None:
    down = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    relay = Relay(down, interval=0.01, max_backoff=0.05, with_schedules=False)
    relay.start()
    time.sleep(0.3)
    relay.stopped.set()
    relay.join(timeout=5)
    assert not relay.is_alive()
