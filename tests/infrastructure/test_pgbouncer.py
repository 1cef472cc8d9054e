"""Behind PgBouncer in transaction mode: a real PgBouncer, started here, on loopback.

Each transaction may run on another server connection there, so Nexus with
``NEXUS_DB_TRANSACTION_POOLER=true`` prepares no statements and sets its
statement timeout per transaction; its advisory locks are transaction-scoped
already. Without the setting, PgBouncer refuses the connection's startup
option. Skipped where PgBouncer is not installed (CI installs Debian's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from nexus.infrastructure.database import get_session
from nexus_dev.local_services import free_port, identity, run_as, stop_process
from tests.conftest import Servers
from tests.support import FLASK, run, start_worker, stop_workers

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

pytestmark = pytest.mark.skipif(
    not Path(PGBOUNCER).exists(), reason="PgBouncer is not installed (apt-get install pgbouncer)"
)


@pytest.fixture
def bouncer(servers: Servers, server_dir: Path) -> Iterator[int]:
    """A PgBouncer in transaction mode in front of the test PostgreSQL: its port."""
    upstream = make_url(servers.postgres_admin_url)
    port = free_port()
    role = upstream.username or "postgres"
    (server_dir / "userlist.txt").write_text(f'"{role}" "{upstream.password or ""}"\n')
    (server_dir / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={upstream.host} port={upstream.port}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {server_dir}/userlist.txt\n"
        # Two server connections for every client: transactions change hands.
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 100\n"
        f"logfile = {server_dir}/pgbouncer.log\npidfile = {server_dir}/pgbouncer.pid\n"
        "unix_socket_dir =\n"
    )
    user = run_as()  # PgBouncer, like PostgreSQL, refuses to run as root
    if user is not None:
        os.chown(server_dir, user.pw_uid, user.pw_gid)
    errors = server_dir / "stderr.txt"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [PGBOUNCER, str(server_dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            **identity(user),
        )
    try:
        deadline = time.monotonic() + 15
        while not (server_dir / "pgbouncer.pid").exists():
            assert process.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "PgBouncer did not start"
            time.sleep(0.1)
        yield port
    finally:
        stop_process(process, grace=5)


def _through(database_url: str, port: int) -> str:
    return make_url(database_url).set(port=port).render_as_string(hide_password=False)


def _recycle_server_connections(servers: Servers, database_url: str) -> None:
    """End PgBouncer's server connections, as its server_lifetime does every hour."""
    name = make_url(database_url).database
    with servers.admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    time.sleep(0.5)  # PgBouncer sees them close and drops them from its pool


def test_the_app_works_behind_pgbouncer_in_transaction_mode(
    make_app: Callable[..., Flask], servers: Servers, fresh_database: str, bouncer: int
) -> None:
    app = make_app(
        database_url=_through(fresh_database, bouncer),
        db_transaction_pooler=True,
        db_statement_timeout_ms=300,
        rate_limits_enabled=False,
    )
    client = app.test_client()
    address, password = "pooled@example.com", "a long and pooled passphrase"
    registered = client.post("/api/v1/auth/register", json={"email": address, "password": password})
    assert registered.status_code == 201, registered.json
    # The same statements again and again: psycopg would prepare them after
    # five, and once PgBouncer renews its server connections, the next
    # transaction would not find them there.
    for attempt in range(8):
        if attempt == 6:
            _recycle_server_connections(servers, fresh_database)
        tokens = client.post("/api/v1/auth/login", json={"email": address, "password": password})
        assert tokens.status_code == 200, tokens.json
        me = client.get(
            "/api/v1/auth/me",
            headers={"Authorization": f"Bearer {tokens.json['data']['access_token']}"},
        )
        assert me.status_code == 200, me.json
    with app.app_context():
        session = get_session()
        # The timeout is the transaction's own.
        assert session.execute(text("SHOW statement_timeout")).scalar() == "300ms"
        with pytest.raises(OperationalError, match="statement timeout"):
            session.execute(text("SELECT pg_sleep(2)"))
        session.rollback()
    assert client.get("/healthz").status_code == 200


def test_a_worker_records_jobs_through_pgbouncer(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str, bouncer: int
) -> None:
    env = subprocess_env(_through(fresh_database, bouncer), NEXUS_DB_TRANSACTION_POOLER="true")
    workers = [start_worker(env)]
    try:
        for _ in range(3):
            result = run([*FLASK, "jobs", "ping", "--timeout", "30"], env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("pong from worker")
    finally:
        stop_workers(workers)


def test_without_the_setting_pgbouncer_refuses_the_startup_option(
    make_app: Callable[..., Flask], fresh_database: str, bouncer: int
) -> None:
    app = make_app(database_url=_through(fresh_database, bouncer))
    with app.app_context(), pytest.raises(OperationalError, match="unsupported startup parameter"):
        get_session().execute(text("SELECT 1"))
