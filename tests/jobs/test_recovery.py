"""The reconciler's recovery of attempts whose worker died, and the worker's run-once guard.

A dead worker is simulated here the way it looks from outside after a
SIGKILL: the row counts a started attempt, RQ holds the job as started with
an execution in its started registry, and nobody heartbeats. The real kill
(a forking worker, ``kill -9``, a restart) is in ``test_worker.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from redis import Redis
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.job import JobStatus as RQJobStatus
from rq.registry import FailedJobRegistry
from sqlalchemy import text
from sqlalchemy.orm import Session

from nexus.infrastructure.database import get_session, transaction
from nexus.infrastructure.queue import SERIALIZER, get_queues
from nexus.jobs import registry, services
from nexus.jobs.relay import Reconciler, RelayReport
from nexus.jobs.worker import NexusSimpleWorker
from nexus_dev.local_services import free_port
from tests.jobs.test_durable import enqueue, row, run_worker


@registry.job_type("tests.survivor", retries=1, retry_intervals=(0,))
def survivor(n: int) -> int:
    return n * 2


@registry.job_type("tests.unique_recount", unique=True)
def unique_recount(widget_id: str) -> str:
    return widget_id


def _die_mid_attempt(app: Flask, db_session: Session, job_id: uuid.UUID, *, silent: str) -> None:
    """What a SIGKILLed worker leaves behind, silent for ``silent`` (an SQL interval)."""
    with app.app_context():
        queue = get_queues().default
        rq_job = queue.fetch_job(str(job_id))
        assert rq_job is not None
        queue.remove(rq_job)  # dequeued
        with queue.connection.pipeline() as pipeline:
            Execution.create(rq_job, ttl=600, pipeline=pipeline, worker_name="dead-worker")
            rq_job.set_status(RQJobStatus.STARTED, pipeline=pipeline)
            pipeline.execute()
        session = get_session()
        with transaction(session):
            attempt = services.start_attempt(session, str(job_id), worker="dead-worker")
        assert attempt.run
    db_session.execute(
        text(
            "UPDATE jobs SET heartbeat_at = now() - CAST(:silent AS interval),"
            " started_at = now() - CAST(:silent AS interval) WHERE id = :id"
        ),
        {"silent": silent, "id": job_id},
    )
    db_session.commit()


def _reconcile(app: Flask) -> RelayReport:
    with app.app_context():
        return Reconciler(with_schedules=False).run()


def test_a_silent_attempt_with_attempts_left_is_retried_and_finishes(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.survivor", n=21)
    _die_mid_attempt(app, db_session, job.id, silent="10 minutes")
    assert _reconcile(app) == RelayReport(abandoned=1)
    retried = row(db_session, job.id)
    assert (retried.status, retried.reason, retried.attempts) == ("queued", "abandoned", 1)
    assert retried.error_type == "AbandonedJobError"
    with app.app_context():
        queue = get_queues().default
        # RQ's started registry no longer holds the dead attempt (its clean-up
        # would otherwise fail the retry later); the retry is queued.
        assert queue.started_job_registry.get_job_ids() == []
        assert queue.job_ids == [str(job.id)]
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.attempts, done.result, done.reason) == ("finished", 2, 42, None)


def test_a_silent_attempt_without_attempts_left_fails_as_abandoned(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=2)
    _die_mid_attempt(app, db_session, job.id, silent="10 minutes")
    assert _reconcile(app) == RelayReport(abandoned=1)
    failed = row(db_session, job.id)
    assert (failed.status, failed.reason, failed.attempts) == ("failed", "abandoned", 1)
    assert failed.ended_at is not None
    assert "stopped heartbeating" in (failed.error_message or "")
    with app.app_context():
        queue = get_queues().default
        assert queue.started_job_registry.get_job_ids() == []
        assert queue.fetch_job(str(job.id)) is None
    # Nothing is left to run it again.
    run_worker(app, redis)
    assert row(db_session, job.id).status == "failed"


def test_a_recent_heartbeat_is_left_alone(app: Flask, db_session: Session, redis: Redis) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=2)
    _die_mid_attempt(app, db_session, job.id, silent="5 seconds")
    assert _reconcile(app) == RelayReport()
    assert row(db_session, job.id).status == "started"


def test_a_heartbeat_only_redis_saw_keeps_the_attempt_alive(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    # PostgreSQL missed the heartbeats (it was down), RQ did not: not abandoned.
    with app.app_context():
        job = enqueue("tests.add", a=1, b=2)
    _die_mid_attempt(app, db_session, job.id, silent="10 minutes")
    rq_job = RQJob.fetch(str(job.id), connection=redis, serializer=SERIALIZER)
    rq_job.heartbeat(datetime.now(UTC), ttl=60)
    assert _reconcile(app) == RelayReport()
    assert row(db_session, job.id).status == "started"


def test_an_end_rq_recorded_is_copied_to_the_row(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    # The horse died and its worker told RQ, but PostgreSQL was down then.
    with app.app_context():
        job = enqueue("tests.add", a=1, b=2)
    _die_mid_attempt(app, db_session, job.id, silent="10 minutes")
    rq_job = RQJob.fetch(str(job.id), connection=redis, serializer=SERIALIZER)
    with redis.pipeline() as pipeline:
        rq_job.set_status(RQJobStatus.FAILED, pipeline=pipeline)
        rq_job._handle_failure(
            "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ",
            pipeline=pipeline,
            worker_name="dead-worker",
        )
        pipeline.execute()
    assert _reconcile(app) == RelayReport(settled=1)
    settled = row(db_session, job.id)
    assert (settled.status, settled.reason, settled.error_type) == (
        "failed",
        "abandoned",
        "AbandonedJobError",
    )
    assert "signal 9" in (settled.error_message or "")
    with app.app_context():
        assert str(job.id) in FailedJobRegistry(queue=get_queues().default).get_job_ids()


def test_a_late_report_from_a_replaced_attempt_changes_nothing(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.survivor", n=1)
    _die_mid_attempt(app, db_session, job.id, silent="10 minutes")
    _reconcile(app)
    run_worker(app, redis)  # attempt 2 finishes
    # The worker presumed dead comes back and reports attempt 1.
    with app.app_context():
        session = get_session()
        with transaction(session):
            changed = services.mark_outcome(
                session, str(job.id), attempt=1, status=services.JobStatus.FAILED, exc_string="X: y"
            )
    assert not changed
    done = row(db_session, job.id)
    assert (done.status, done.attempts) == ("finished", 2)


def test_a_duplicate_delivery_runs_once(app: Flask, db_session: Session, redis: Redis) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=2, b=2)
        queue = get_queues().default
        rq_job = queue.fetch_job(str(job.id))
        assert rq_job is not None
        queue.enqueue_job(rq_job)  # the same id twice in the queue
        assert queue.job_ids == [str(job.id), str(job.id)]
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.attempts, done.result) == ("finished", 1, {"sum": 4})


def test_a_job_canceled_after_rq_handed_it_out_is_not_run(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=2, b=2)
    # Canceled in PostgreSQL while Redis was unreachable: RQ still has it.
    db_session.execute(text("UPDATE jobs SET status = 'canceled' WHERE id = :id"), {"id": job.id})
    db_session.commit()
    run_worker(app, redis)
    skipped = row(db_session, job.id)
    assert (skipped.status, skipped.attempts, skipped.result) == ("canceled", 0, None)
    rq_job = RQJob.fetch(str(job.id), connection=redis, serializer=SERIALIZER)
    assert rq_job.get_status() == RQJobStatus.CANCELED


def test_a_unique_job_type_has_one_active_job_per_arguments(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        first = enqueue("tests.unique_recount", widget_id="w1")
        again = enqueue("tests.unique_recount", widget_id="w1")
        other = enqueue("tests.unique_recount", widget_id="w2")
        assert again.id == first.id
        assert other.id != first.id
        assert len(get_queues().default.job_ids) == 2
    run_worker(app, redis)
    # Once it has ended, the same arguments may run again.
    with app.app_context():
        later = enqueue("tests.unique_recount", widget_id="w1")
    assert later.id != first.id


def test_a_dedupe_key_returns_the_same_job_for_ever(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    def submit() -> uuid.UUID:
        return enqueue("tests.add", dedupe_key="order-42-receipt", a=1, b=1).id

    with app.app_context():
        first = submit()
    run_worker(app, redis)
    with app.app_context():
        assert submit() == first
        assert get_queues().default.count == 0  # not delivered again
    assert row(db_session, first).attempts == 1


def test_rows_for_removed_job_types_fail_instead_of_blocking_the_relay(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    db_session.execute(
        text(
            "INSERT INTO jobs (id, name, queue, status, created_at)"
            " VALUES (:id, 'gone.job', 'default', 'pending', now() - interval '1 minute')"
        ),
        {"id": (job_id := uuid.uuid4())},
    )
    db_session.commit()
    assert _reconcile(app) == RelayReport(delivered=1)
    gone = row(db_session, job_id)
    assert (gone.status, gone.error_type, gone.error_message) == (
        "failed",
        "UnknownJobError",
        "gone.job",
    )


def test_retries_spend_the_intervals_in_order(app: Flask) -> None:
    assert registry.get("tests.survivor").retry(remaining=0) is None
    # The canary waits 1 s, then 5 s; a re-delivery after one retry has 5 s left.
    retry = registry.get("jobs.canary").retry(remaining=1, used=1)
    assert retry is not None
    assert (retry.max, retry.intervals) == (1, [5])
    assert timedelta(seconds=registry.get("jobs.canary").interval(7)) == timedelta(seconds=5)


def test_a_delayed_job_waits_in_postgresql_and_the_relay_delivers_it_when_due(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", delay=timedelta(hours=1), a=5, b=5)
        assert get_queues().default.count == 0  # not in RQ at all
    assert row(db_session, job.id).status == "scheduled"
    assert _reconcile(app) == RelayReport()  # not due yet
    db_session.execute(
        text("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = :id"), {"id": job.id}
    )
    db_session.commit()
    assert _reconcile(app) == RelayReport(delivered=1)
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.result, done.run_at) == ("finished", {"sum": 10}, None)


def test_a_retry_rqs_scheduler_did_not_move_is_delivered_by_the_relay(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    # RQ scheduled an interval retry, then its scheduler died with its worker.
    with app.app_context():
        job = enqueue("tests.survivor", n=4)
        queue = get_queues().default
        rq_job = queue.fetch_job(str(job.id))
        assert rq_job is not None
        queue.remove(rq_job)
        queue.schedule_job(rq_job, datetime.now(UTC) - timedelta(minutes=1))
    db_session.execute(
        text(
            "UPDATE jobs SET status = 'scheduled', attempts = 1,"
            " run_at = now() - interval '1 minute' WHERE id = :id"
        ),
        {"id": job.id},
    )
    db_session.commit()
    assert _reconcile(app) == RelayReport(delivered=1)
    with app.app_context():
        assert get_queues().default.job_ids == [str(job.id)]
        assert get_queues().default.scheduled_job_registry.get_job_ids() == []
    run_worker(app, redis)
    done = row(db_session, job.id)
    assert (done.status, done.attempts, done.result) == ("finished", 2, 8)


def test_a_job_whose_start_cannot_be_recorded_goes_back_to_its_queue(
    make_app: Callable[..., Flask], app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        job = enqueue("tests.add", a=1, b=1)
        queue = get_queues().default
    blind = make_app(database_url=f"postgresql://nexus@127.0.0.1:{free_port()}/nexus")
    worker = NexusSimpleWorker([queue], connection=redis, app=blind)
    worker.work(burst=True, max_jobs=1)  # PostgreSQL is unreachable for this worker
    assert queue.job_ids == [str(job.id)]  # not run, not lost
    assert row(db_session, job.id).attempts == 0
    run_worker(app, redis)
    assert row(db_session, job.id).status == "finished"
