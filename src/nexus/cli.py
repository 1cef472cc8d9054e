"""``flask --app nexus ...`` commands: worker, worker-health, create-admin, jobs, db.

Owns the command-line surface; each command is a thin shell over a function
elsewhere (the worker class, ``send_ping``, Alembic), and exits non-zero with
a one-line reason when it fails.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.exceptions import RedisError
from rq import Worker

from nexus import migrations
from nexus.accounts import services as account_services
from nexus.accounts.auth import family_cache, password_hasher
from nexus.api.errors import ApiError
from nexus.audit.services import AuditContext
from nexus.config import current_settings
from nexus.infrastructure.database import get_session, transaction
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import get_queues
from nexus.infrastructure.redis import create_redis, get_redis
from nexus.jobs.ping import PingError, send_ping
from nexus.jobs.relay import Relay
from nexus.jobs.worker import NexusWorker

log = get_logger(__name__)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option(
    "--queue",
    "-q",
    "queue_names",
    multiple=True,
    help="Serve only these queues (repeatable), in this order. Default: high, default, low.",
)
@click.option("--name", default=None, help="Worker name (default: host.pid).")
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
    worker = NexusWorker(
        [queue.name for queue in queues],
        connection=connection,
        name=name,
        app=current_app._get_current_object(),  # type: ignore[attr-defined]
    )
    relay = Relay(current_app._get_current_object())  # type: ignore[attr-defined]
    if not burst:
        relay.start()
    try:
        # The scheduler moves delayed jobs and retries-with-backoff to their
        # queue when due; RQ lets one worker at a time hold it.
        worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True)
    finally:
        relay.stopped.set()
        connection.connection_pool.disconnect()


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


@click.command("create-admin")
@click.argument("email")
@with_appcontext
def create_admin_command(email: str) -> None:
    """Create EMAIL as an admin, or promote the existing account (idempotent).

    The password comes from NEXUS_ADMIN_PASSWORD or a prompt, never an argument
    (arguments end up in shell history and process lists).
    """
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    password = os.environ.get("NEXUS_ADMIN_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    session = get_session()
    try:
        with transaction(session):
            user, created = account_services.ensure_admin(
                session=session,
                hasher=password_hasher(),
                email=email,
                password=password,
                cache=family_cache(),
                context=AuditContext(actor_role="cli"),
            )
    except ApiError as exc:
        reasons = "; ".join(error["message"] for error in exc.errors or []) or exc.detail
        raise click.ClickException(reasons) from None
    click.echo(f"{'created' if created else 'admin'} {user.email} ({user.id})")


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


@click.group("db")
def db_group() -> None:
    """Apply and inspect database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    migrations.upgrade(current_settings().database_url, revision)
    click.echo(f"database at {migrations.current(current_settings().database_url) or 'base'}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (e.g. -1, or base)."""
    migrations.downgrade(current_settings().database_url, revision)
    click.echo(f"database at {migrations.current(current_settings().database_url) or 'base'}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revision the database is at."""
    click.echo(
        migrations.current(current_settings().database_url) or "base (no migrations applied)"
    )


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option("--autogenerate", is_flag=True, help="Diff the models against the database.")
@with_appcontext
def db_revision(message: str, autogenerate: bool) -> None:
    """Create the next numbered migration file (0002_..., 0003_...)."""
    path = migrations.new_revision(
        current_settings().database_url, message, autogenerate=autogenerate
    )
    click.echo(f"created {path}")


def register(app: Flask) -> None:
    for command in (
        worker_command,
        worker_health_command,
        create_admin_command,
        jobs_group,
        db_group,
    ):
        app.cli.add_command(command)
