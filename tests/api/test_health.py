"""/livez and /healthz, including dependencies that are gone or hang (SIGSTOP)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from nexus.api import health
from nexus.api.health import HealthCheck
from nexus_dev.local_services import (
    PostgresServer,
    RedisServer,
    find_postgres,
    free_port,
    identity,
    stop_process,
)
from tests.support import signal_tree, wait_for

OK = {"status": "ok", "db": "ok", "redis": "ok"}


def test_healthz_ok_body_and_headers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_data(as_text=True).strip() == '{"status":"ok","db":"ok","redis":"ok"}'
    assert response.headers["Cache-Control"] == "no-store"


def test_livez_touches_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
    )
    response = app.test_client().get("/livez")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"database_url": "postgresql+psycopg://postgres@127.0.0.1:{port}/x"},
            {"db": "error", "redis": "ok"},
        ),
        ({"redis_url": "redis://127.0.0.1:{port}/0"}, {"db": "ok", "redis": "error"}),
    ],
)
def test_healthz_503_when_a_dependency_is_gone(
    make_app: Callable[..., Flask], override: dict[str, str], expected: dict[str, str]
) -> None:
    port = free_port()  # nothing listens: connection refused
    app = make_app(**{key: value.format(port=port) for key, value in override.items()})
    started = time.monotonic()
    response = app.test_client().get("/healthz")
    assert time.monotonic() - started < 2.0
    assert response.status_code == 503
    assert response.content_type == "application/json"
    assert response.get_json() == {"status": "degraded", **expected}


@pytest.fixture
def own_postgres(server_dir: Path) -> Iterator[tuple[PostgresServer, subprocess.Popen[bytes]]]:
    server = PostgresServer(find_postgres(), server_dir / "pg", free_port(), durable=False)
    server.initialise()
    process = subprocess.Popen(
        server.command(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **identity(server.user),
    )
    server.wait_ready(process=process)
    yield server, process
    signal_tree(process, signal.SIGCONT)
    stop_process(process, sig=signal.SIGINT)


def _assert_hang_then_recovery(
    client: FlaskClient, process: subprocess.Popen[bytes], name: str
) -> None:
    assert client.get("/healthz").get_json() == OK
    signal_tree(process, signal.SIGSTOP)
    # Several probes while it hangs: each answers within the deadline, and
    # they share one stuck probe rather than piling up threads.
    for _ in range(3):
        started = time.monotonic()
        response = client.get("/healthz")
        assert time.monotonic() - started < 2.0
        assert response.status_code == 503
        assert response.get_json() == {**OK, "status": "degraded", name: "error"}
    signal_tree(process, signal.SIGCONT)
    wait_for(lambda: client.get("/healthz").status_code == 200, timeout=10)
    assert client.get("/healthz").get_json() == OK


def test_healthz_survives_a_hung_redis_and_recovers(
    make_app: Callable[..., Flask], own_redis: tuple[RedisServer, subprocess.Popen[bytes]]
) -> None:
    server, process = own_redis
    app = make_app(redis_url=server.url())
    _assert_hang_then_recovery(app.test_client(), process, "redis")


def test_healthz_survives_a_hung_postgres_and_recovers(
    make_app: Callable[..., Flask], own_postgres: tuple[PostgresServer, subprocess.Popen[bytes]]
) -> None:
    server, process = own_postgres
    app = make_app(database_url=server.url())
    _assert_hang_then_recovery(app.test_client(), process, "db")


def test_healthz_recovers_when_a_stopped_redis_returns(
    make_app: Callable[..., Flask], own_redis: tuple[RedisServer, subprocess.Popen[bytes]]
) -> None:
    server, process = own_redis
    app = make_app(redis_url=server.url())
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    stop_process(process)
    assert client.get("/healthz").get_json()["redis"] == "error"
    restarted = subprocess.Popen(
        server.command(), stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        server.wait_ready(process=restarted)
        wait_for(lambda: client.get("/healthz").status_code == 200, timeout=10)
    finally:
        stop_process(restarted)


def test_at_most_one_probe_in_flight_per_dependency() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hanging_probe() -> None:
        calls.append(1)
        release.wait(5)

    check = HealthCheck({"db": hanging_probe, "redis": lambda: None}, timeout=0.05)
    for _ in range(5):
        assert check.run() == {"db": "error", "redis": "ok"}
    assert len(calls) == 1
    release.set()
    wait_for(lambda: check.run() == {"db": "ok", "redis": "ok"}, timeout=2)


def test_a_failing_probe_reports_error() -> None:
    def failing() -> None:
        raise ConnectionError("refused")

    assert HealthCheck({"db": failing}, timeout=1).run() == {"db": "error"}


def test_healthz_503_when_only_the_postmaster_hangs(
    make_app: Callable[..., Flask], own_postgres: tuple[PostgresServer, subprocess.Popen[bytes]]
) -> None:
    server, process = own_postgres
    client = make_app(database_url=server.url()).test_client()
    assert client.get("/healthz").status_code == 200
    process.send_signal(signal.SIGSTOP)  # backends keep running; new connections hang
    try:
        # The kept probe connection still answers; within the renewal period
        # the probe opens a new connection, which hangs: 503 from then on.
        assert wait_for(
            lambda: client.get("/healthz").status_code == 503,
            timeout=health.FRESH_CONNECTION_SECONDS + 5,
        )
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.get_json()["db"] == "error"
    finally:
        process.send_signal(signal.SIGCONT)
    wait_for(lambda: client.get("/healthz").status_code == 200, timeout=10)


def test_healthz_probes_postgres_on_one_kept_connection(
    make_app: Callable[..., Flask], own_postgres: tuple[PostgresServer, subprocess.Popen[bytes]]
) -> None:
    # Under load a readiness probe must cost a round trip, not a new connection.
    server, _ = own_postgres
    client = make_app(database_url=server.url()).test_client()
    started: set[object] = set()
    with psycopg.connect(server.libpq_url(), autocommit=True) as admin:
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
            rows = admin.execute(
                "SELECT pid, backend_start FROM pg_stat_activity "
                "WHERE application_name = 'nexus-health'"
            ).fetchall()
            assert len(rows) == 1
            started.add(rows[0])
    # 20 probes in well under FRESH_CONNECTION_SECONDS: at most one renewal.
    assert len(started) <= 2
