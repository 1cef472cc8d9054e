"""``flask --app nexus`` commands of the job engine: ``worker``, ``worker-health``, ``jobs ...``.

Each command is a thin shell over the worker class, ``send_ping`` or the job
services, and exits non-zero with a one-line reason when it fails. Admin
actions (retry, cancel, canary) are audited, as their HTTP twins are.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext
from prometheus_client import start_http_server
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested

from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.config import current_settings
from nexus.infrastructure import metrics
from nexus.infrastructure.database import get_database, get_session, transaction
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import get_queues
from nexus.infrastructure.redis import create_redis, get_redis, warn_if_evicting
from nexus.jobs import canary
from nexus.jobs import services as job_services
from nexus.jobs.models import Job, JobStatus
from nexus.jobs.ping import PingError, send_ping
from nexus.jobs.worker import NexusSimpleWorker, NexusWorker

log = get_logger(__name__)
WORKER_RESTART_SECONDS = 2.0


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option(
    "--queue",
    "-q",
    "queue_names",
    multiple=True,
    help="Serve only these queues (repeatable), in this order. Default: high, default, low.",
)
@click.option("--name", default=None, help="Worker name (default: a random id).")
@with_appcontext
def worker_command(burst: bool, queue_names: tuple[str, ...], name: str | None) -> None:
    """Run an RQ worker whose jobs run inside this app."""
    settings = current_settings()
    try:
        queues = get_queues().named(queue_names or settings.queue_names)
    except KeyError as exc:
        raise click.BadParameter(
            f"unknown queue {exc.args[0]!r}; known: {', '.join(settings.queue_names)}",
            param_hint="--queue",
        ) from None
    # Its own pool: RQ raises the socket timeout of the pool it is given to
    # outlast its blocking dequeue, which the app's commands should not inherit.
    connection = create_redis(settings, client_name="nexus-worker")
    warn_if_evicting(connection)
    worker_class = NexusSimpleWorker if settings.worker_mode == "simple" else NexusWorker
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if settings.worker_metrics_port and not burst:
        # Job metrics are counted in this process (not in the one forked per
        # job), and served from it for Prometheus to scrape.
        start_http_server(
            settings.worker_metrics_port,
            addr=settings.worker_metrics_address,
            registry=metrics.process_registry(),
        )
        log.info(
            "worker.metrics_serving",
            address=settings.worker_metrics_address,
            port=settings.worker_metrics_port,
        )
    try:
        for run in itertools.count():
            worker = None
            try:
                # Building the worker talks to Redis too: inside the try, so a
                # Redis still down at a restart means another wait, not an exit.
                worker = worker_class(
                    [queue.name for queue in queues],
                    connection=connection,
                    # A crashed run may have left its name registered in Redis.
                    name=name if run == 0 or name is None else f"{name}.{run}",
                    app=app,
                )
                # The scheduler moves RQ's own interval retries to their queue
                # when due; RQ lets one worker at a time hold it.
                worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True)
            except RedisError as exc:
                log.warning("worker.redis_lost", error=str(exc))
            if burst or (worker is not None and worker.stop_requested):
                return
            # RQ ends its work loop on a Redis error between jobs (it waits
            # out outages only while idle); start a fresh loop instead of
            # leaving that to a supervisor.
            log.warning("worker.restarting", wait_seconds=WORKER_RESTART_SECONDS)
            _stop_on_signal()
            time.sleep(WORKER_RESTART_SECONDS)
    except StopRequested:
        return  # SIGTERM/SIGINT while RQ was tearing down, or between two runs
    finally:
        connection.connection_pool.disconnect()


def _stop_on_signal() -> None:
    """Between two runs of RQ's loop, SIGTERM/SIGINT end the command (RQ's handlers need Redis)."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise StopRequested

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@click.command("worker-health")
@with_appcontext
def worker_health_command() -> None:
    """Exit 0 if a worker on this host is alive and heartbeating, else 1 (container healthcheck)."""
    try:
        workers = Worker.all(connection=get_redis())
    except RedisError as exc:
        raise click.ClickException(f"Redis is unreachable: {exc}") from None
    host = socket.gethostname()
    now = datetime.now(UTC)
    for worker in workers:
        if worker.hostname != host or worker.last_heartbeat is None:
            continue
        heartbeat = worker.last_heartbeat.replace(tzinfo=UTC)
        # RQ refreshes the heartbeat at least once per worker TTL, idle or busy.
        if (now - heartbeat).total_seconds() <= worker.worker_ttl and _alive(worker.pid):
            click.echo(f"worker {worker.name} ({worker.get_state()}) is healthy")
            return
    raise click.ClickException(f"no live worker with a fresh heartbeat on {host}")


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@click.group("jobs")
def jobs_group() -> None:
    """Enqueue and inspect background jobs."""


@jobs_group.command("ping")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for a worker.")
@with_appcontext
def ping_command(timeout: float) -> None:
    """Send the example job through a worker and print its answer and round trip."""
    try:
        reply = send_ping(get_queues().default, timeout=timeout)
    except PingError as exc:
        raise click.ClickException(str(exc)) from None
    answer = reply.answer
    click.echo(
        f"pong from worker {answer['worker']} (PostgreSQL {answer['postgres']}) "
        f"in {reply.round_trip_ms:.1f} ms [job {reply.job_id}]"
    )


@jobs_group.command("list")
@click.option("--status", type=click.Choice(sorted(s.value for s in JobStatus)), default=None)
@click.option("--name", default=None, help="Only jobs of this type.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
def jobs_list_command(status: str | None, name: str | None, limit: int) -> None:
    """List jobs, newest first: id, status, attempts, name, reason, created."""
    jobs = job_services.list_jobs(get_session(), status=status, name=name, after=None, limit=limit)
    for job in jobs:
        click.echo(
            f"{job.id}  {job.status:<9} {job.attempts}/{job.max_attempts}  {job.name:<32} "
            f"{job.reason or '-':<9} {job.created_at:%Y-%m-%d %H:%M:%S}"
        )


@jobs_group.command("retry")
@click.argument("job_id", type=click.UUID)
@with_appcontext
def jobs_retry_command(job_id: uuid.UUID) -> None:
    """Run a failed or canceled job again (audited)."""
    session = get_session()
    job = _job_action(
        "jobs.retry",
        lambda: job_services.retry(
            session, job_id, queues=get_queues(), sessions=get_database().sessionmaker
        ),
    )
    session.refresh(job)
    click.echo(f"{job.id} {job.status}")


@jobs_group.command("cancel")
@click.argument("job_id", type=click.UUID)
@with_appcontext
def jobs_cancel_command(job_id: uuid.UUID) -> None:
    """Cancel a job that has not ended; a running one is stopped (audited)."""
    job = _job_action(
        "jobs.cancel", lambda: job_services.cancel(get_session(), job_id, redis=get_redis())
    )
    click.echo(f"{job.id} {job.status}")


def _job_action(action: str, run: Callable[[], Job]) -> Job:
    session = get_session()
    try:
        with transaction(session):
            job = run()
            audit.record(
                session=session,
                context=AuditContext(actor_role="cli"),
                action=action,
                target_type="job",
                target_id=job.id,
                meta={"name": job.name, "attempts": job.attempts},
            )
    except job_services.JobNotFound:
        raise click.ClickException("no such job") from None
    except job_services.JobStateError as exc:
        raise click.ClickException(exc.detail) from None
    return job


@jobs_group.command("canary")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--seconds", default=0.0, show_default=True, type=click.FloatRange(0, 300))
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for all to end.")
@with_appcontext
def jobs_canary_command(count: int, concurrency: int, seconds: float, timeout: float) -> None:
    """Enqueue COUNT canaries from CONCURRENCY threads, wait for them, and report.

    Exits 1 unless every canary finished and ran exactly once.
    """
    session = get_session()
    with transaction(session):
        audit.record(
            session=session,
            context=AuditContext(actor_role="cli"),
            action="jobs.canary",
            meta={"count": count, "concurrency": concurrency, "seconds": seconds},
        )
    report = canary.run_batch(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        count=count,
        concurrency=concurrency,
        seconds=seconds,
        timeout=timeout,
    )
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.statuses.items()))
    runs = ", ".join(f"{n} x {a}" for a, n in sorted(report.attempts.items()))
    click.echo(
        f"{count} canaries in {report.seconds:.1f} s ({report.jobs_per_second:.1f} jobs/s): "
        f"{statuses}; runs per job: {runs}; queue wait p50 {report.percentile(0.5):.0f} ms, "
        f"p95 {report.percentile(0.95):.0f} ms"
    )
    if not report.all_finished_once:
        raise click.ClickException("not every canary finished exactly once")
