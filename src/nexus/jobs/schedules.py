"""Periodic jobs: each due cron tick becomes one job, however many schedulers see it.

A job type declared with ``schedule="<cron>"`` (UTC) is enqueued once per
tick through the ordinary ``enqueue``, with the dedupe key
``"<name>@<tick time>"``. The ``jobs`` table keeps that key unique, so when
several workers' relays see the same tick, one row is written and the
others get that row back. A worker that was down across several ticks
enqueues only the latest one on its return: missed ticks are coalesced, not
replayed (a purge that runs once catches up on all of them).

``croniter`` does the cron arithmetic; it is what RQ's own cron support
uses. RQ's ``CronScheduler`` is not used: it enqueues straight to Redis,
bypassing the row, and runs as a process of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter
from sqlalchemy.orm import Session, sessionmaker

from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import Queues
from nexus.jobs import registry, services

log = get_logger(__name__)
# Job name -> the latest tick this process has enqueued (or found enqueued).
SeenTicks = dict[str, datetime]


def latest_tick(schedule: str, now: datetime) -> datetime:
    """The most recent time at or before ``now`` that ``schedule`` fires."""
    tick: datetime = croniter(schedule, now).get_prev(datetime)
    # croniter answers the previous tick even when ``now`` is one exactly.
    following: datetime = croniter(schedule, tick).get_next(datetime)
    return following if following <= now else tick


def dedupe_key(name: str, tick: datetime) -> str:
    return f"{name}@{tick.astimezone(UTC).isoformat()}"


def enqueue_due(
    *,
    sessions: sessionmaker[Session],
    queues: Queues,
    seen: SeenTicks,
    now: datetime | None = None,
) -> int:
    """Enqueue every periodic job whose latest tick this process has not handled yet.

    Answers how many jobs were new (another scheduler may have written the
    rest). Each tick is one short transaction of its own.
    """
    now = now or datetime.now(UTC)
    created = 0
    for job_type in registry.periodic():
        assert job_type.schedule is not None  # noqa: S101 - periodic() filters on it
        tick = latest_tick(job_type.schedule, now)
        if seen.get(job_type.name) == tick:
            continue
        key = dedupe_key(job_type.name, tick)
        with sessions() as session, session.begin():
            _, is_new = services.enqueue_or_find(
                session=session,
                queues=queues,
                sessions=sessions,
                name=job_type.name,
                dedupe_key=key,
            )
        seen[job_type.name] = tick
        if is_new:
            created += 1
            log.info("jobs.tick_enqueued", job_name=job_type.name, tick=tick.isoformat())
    return created
