"""The flask commands: db, worker, jobs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq import Worker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nexus import migrations
from tests.support import FLASK, REPO_ROOT, run, start_worker, stop_worker, wait_for


def test_db_commands_migrate_and_report(
    make_app: Callable[..., Flask], empty_database: str
) -> None:
    runner = make_app(database_url=empty_database).test_cli_runner()
    result = runner.invoke(args=["db", "current"])
    assert result.exit_code == 0
    assert result.stdout.strip() == "base (no migrations applied)"

    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"database at {migrations.head()}"

    result = runner.invoke(args=["db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "database at base"


def test_db_commands_connect_as_the_migration_role(
    subprocess_env: Callable[..., dict[str, str]], empty_database: str
) -> None:
    # The app's own URL names a role that does not exist: only the owner's
    # URL can have done the work.
    app_url = make_url(empty_database).set(username="no_such_app_role", password="x")
    env = subprocess_env(
        app_url.render_as_string(hide_password=False), MIGRATION_DATABASE_URL=empty_database
    )
    result = run([*FLASK, "db", "upgrade"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at {migrations.head()}"
    assert migrations.current(empty_database) == migrations.head()


def test_db_wait_returns_once_the_schema_is_this_codes(
    subprocess_env: Callable[..., dict[str, str]], empty_database: str
) -> None:
    # As a pod's init container runs it: the schema is behind while the
    # migration job runs, and the wait ends as soon as that job is done.
    waiting = subprocess.Popen(
        [*FLASK, "db", "wait", "--timeout", "60"],
        env=subprocess_env(empty_database),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert waiting.poll() is None, waiting.communicate()
        migrations.upgrade(empty_database)
        stdout, stderr = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, stderr
    assert stdout.strip() == f"database at {migrations.head()}"


def test_db_wait_gives_up_saying_where_the_database_is(
    subprocess_env: Callable[..., dict[str, str]], empty_database: str
) -> None:
    result = run([*FLASK, "db", "wait", "--timeout", "1"], subprocess_env(empty_database))
    assert result.returncode == 1
    assert f"database at base, not {migrations.head()}, after 1 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_wait_gives_up_on_an_unreachable_database(
    subprocess_env: Callable[..., dict[str, str]], empty_database: str
) -> None:
    nowhere = make_url(empty_database).set(host="127.0.0.1", port=1)
    env = subprocess_env(nowhere.render_as_string(hide_password=False))
    result = run([*FLASK, "db", "wait", "--timeout", "0"], env)
    assert result.returncode == 1
    assert "database unreachable (OperationalError)" in result.stderr


def test_db_wait_accepts_a_newer_schema(
    make_app: Callable[..., Flask], empty_database: str
) -> None:
    # A newer release migrated first (a rollback of the code): its revision
    # is unknown here, and the old code starts. One this code knows but has
    # not reached is waited for.
    migrations.upgrade(empty_database)
    engine = create_engine(empty_database)
    runner = make_app(database_url=empty_database).test_cli_runner()
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        result = runner.invoke(args=["db", "wait", "--timeout", "0"])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "database at 9999"
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
        result = runner.invoke(args=["db", "wait", "--timeout", "0"])
        assert result.exit_code == 1
        assert "database at base" in result.output
    finally:
        engine.dispose()


def test_db_downgrade_needs_an_explicit_target(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "downgrade"])
    assert result.exit_code == 2
    assert "Missing argument 'REVISION'" in result.output


def test_worker_rejects_unknown_queues(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["worker", "--queue", "urgent"])
    assert result.exit_code == 2
    assert "unknown queue 'urgent'; known: high, default, low" in result.output


def test_worker_burst_exits_when_queues_are_empty(app: Flask, redis: Redis) -> None:
    result = app.test_cli_runner().invoke(args=["worker", "--burst", "--queue", "low"])
    assert result.exit_code == 0, result.output


def test_worker_exits_0_on_sigterm(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], redis: Redis
) -> None:
    worker = start_worker(subprocess_env(fresh_database))
    try:
        # Idle means listening, with RQ's signal handlers installed; a SIGTERM
        # before that meets the default handler.
        wait_for(
            lambda: [w.get_state() for w in Worker.all(connection=redis)] == ["idle"], timeout=30
        )
    finally:
        output = stop_worker(worker)
    assert worker.returncode == 0, output
    assert redis.scard("rq:workers") == 0  # deregistered on the way out


def test_bad_configuration_fails_fast_with_one_message(
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    env = subprocess_env("sqlite:///x.db", NEXUS_ENV="prod")
    started = time.monotonic()
    result = run([*FLASK, "db", "current"], env)
    assert time.monotonic() - started < 30
    assert result.returncode == 2
    assert result.stderr.startswith("Nexus configuration is invalid (NEXUS_ENV=prod)")
    assert "Traceback" not in result.stderr
    assert "DATABASE_URL: driver 'sqlite' is not supported" in result.stderr
    assert "NEXUS_JWT_SECRET: required in prod" in result.stderr


def test_db_wait_refuses_a_negative_timeout(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "wait", "--timeout", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.output
