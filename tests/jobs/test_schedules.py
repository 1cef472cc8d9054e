"""Periodic jobs: one job per tick however many schedulers, and the periodic jobs Nexus ships."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from nexus.accounts.models import TokenFamily, User
from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import get_queues
from nexus.jobs import registry, schedules
from nexus.jobs.models import Job
from tests.jobs.test_durable import enqueue, row, run_worker

NOW = datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)


def test_the_latest_tick_is_at_or_before_now() -> None:
    assert schedules.latest_tick("*/5 * * * *", NOW) == datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    exactly = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    assert schedules.latest_tick("*/5 * * * *", exactly) == exactly
    assert schedules.latest_tick("23 3 * * *", NOW) == datetime(2026, 11, 22, 3, 23, tzinfo=UTC)


def test_the_app_registers_the_periodic_jobs_nexus_ships(app: Flask) -> None:
    assert {job.name: job.schedule for job in registry.periodic()} == {
        "accounts.purge_token_families": "17 * * * *",
        "jobs.purge_ended": "23 3 * * *",
        "jobs.reconcile": "*/5 * * * *",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "every minute"}, "not a cron expression"),
        ({"priority": "urgent"}, "priority"),
        ({"retries": -1}, ">= 0"),
    ],
)
def test_bad_declarations_fail_at_import(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.job_type("tests.bad", **options)  # type: ignore[arg-type]


def _enqueue_due(app: Flask, seen: schedules.SeenTicks, now: datetime) -> int:
    with app.app_context():
        return schedules.enqueue_due(
            sessions=get_database().sessionmaker, queues=get_queues(), seen=seen, now=now
        )


def _ticks(db_session: Session) -> dict[str, int]:
    db_session.expire_all()
    counts = db_session.execute(
        select(Job.name, func.count()).where(Job.dedupe_key.is_not(None)).group_by(Job.name)
    )
    return dict(counts.all())  # type: ignore[arg-type]


def test_two_schedulers_enqueue_each_tick_once(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    first: schedules.SeenTicks = {}
    second: schedules.SeenTicks = {}
    assert _enqueue_due(app, first, NOW) == 3
    assert _enqueue_due(app, second, NOW) == 0  # the other scheduler already did
    assert _enqueue_due(app, first, NOW) == 0
    assert _ticks(db_session) == {
        "accounts.purge_token_families": 1,
        "jobs.purge_ended": 1,
        "jobs.reconcile": 1,
    }
    # Five minutes on, only the reconciler has a new tick.
    assert _enqueue_due(app, second, NOW + timedelta(minutes=5)) == 1
    assert _enqueue_due(app, first, NOW + timedelta(minutes=5)) == 0
    assert _ticks(db_session)["jobs.reconcile"] == 2
    keys = db_session.scalars(select(Job.dedupe_key).where(Job.name == "jobs.reconcile")).all()
    assert sorted(keys) == [  # type: ignore[type-var]
        "jobs.reconcile@2026-11-22T10:05:00+00:00",
        "jobs.reconcile@2026-11-22T10:10:00+00:00",
    ]


def test_missed_ticks_are_coalesced(app: Flask, db_session: Session, redis: Redis) -> None:
    seen: schedules.SeenTicks = {}
    _enqueue_due(app, seen, NOW)
    # Down for three hours: one reconcile for the latest tick, not thirty-six.
    _enqueue_due(app, seen, NOW + timedelta(hours=3))
    assert _ticks(db_session)["jobs.reconcile"] == 2


def _age_ended(db_session: Session, job_id: uuid.UUID, days: int) -> None:
    db_session.execute(
        text("UPDATE jobs SET ended_at = now() - make_interval(days => :days) WHERE id = :id"),
        {"days": days, "id": job_id},
    )
    db_session.commit()


def test_purge_ended_deletes_only_ended_jobs_past_retention(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        old = enqueue("tests.add", a=1, b=1)
        recent = enqueue("tests.add", a=2, b=2)
    run_worker(app, redis)
    with app.app_context():
        waiting = enqueue("tests.add", a=3, b=3)  # active: never purged
    _age_ended(db_session, old.id, days=15)  # retention is 14 days
    _age_ended(db_session, recent.id, days=13)
    with app.app_context():
        purge = enqueue("jobs.purge_ended")
    run_worker(app, redis)
    assert row(db_session, purge.id).result == {"deleted": 1}
    db_session.expire_all()
    assert db_session.get(Job, old.id) is None
    assert db_session.get(Job, recent.id) is not None
    assert db_session.get(Job, waiting.id) is not None


def test_purge_token_families_deletes_expired_ones_only(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    user = User(email="purge@example.com", password_hash="x", role="member")
    db_session.add(user)
    db_session.flush()
    now = datetime.now(UTC)
    for name, expires_at in (
        ("expired", now - timedelta(days=2)),
        ("live", now + timedelta(days=2)),
    ):
        db_session.add(
            TokenFamily(id=uuid.uuid4(), user_id=user.id, refresh_jti=name, expires_at=expires_at)
        )
    db_session.commit()
    with app.app_context():
        purge = enqueue("accounts.purge_token_families")
    run_worker(app, redis)
    assert row(db_session, purge.id).result == {"deleted": 1}
    db_session.expire_all()
    assert db_session.scalars(select(TokenFamily.refresh_jti)).all() == ["live"]


def test_the_reconcile_job_records_what_it_found(
    app: Flask, db_session: Session, redis: Redis
) -> None:
    with app.app_context():
        queued = enqueue("tests.add", a=1, b=1)
    db_session.execute(
        text("UPDATE jobs SET enqueued_at = now() - interval '1 minute' WHERE id = :id"),
        {"id": queued.id},
    )
    db_session.commit()
    redis.flushdb()  # Redis lost it
    with app.app_context():
        sweep = enqueue("jobs.reconcile")
    run_worker(app, redis)
    assert row(db_session, sweep.id).result == {
        "delivered": 0,
        "lost": 1,
        "abandoned": 0,
        "settled": 0,
        "redis_down": False,
    }
    assert row(db_session, queued.id).status == "finished"
