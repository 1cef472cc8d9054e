"""Authentication without Redis, without anything, and under a login flood."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from nexus.accounts.auth import password_hasher
from nexus.accounts.models import User
from nexus_dev.local_services import RedisServer, free_port
from tests.accounts_fixtures import PASSWORD
from tests.api.test_errors import assert_problem
from tests.support import capture_logs, signal_tree


def _user(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["nexus.database"].sessionmaker()
        session.add(User(email="solo@example.com", password_hash=password_hasher().hash(PASSWORD)))
        session.commit()
        session.close()


def test_authenticated_requests_work_without_redis_and_revocations_still_hold(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    _user(app)
    client = app.test_client()
    body = client.post(
        "/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD}
    ).get_json()["data"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    # The revocation was read from PostgreSQL: no cache could have told.
    assert_problem(client.get("/api/v1/auth/me", headers=headers), 401, "E_UNAUTHENTICATED")


def test_no_redis_and_no_postgres_is_503_auth_unavailable(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database)
    _user(app)
    token = (
        app.test_client()
        .post("/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD})
        .get_json()["data"]["access_token"]
    )
    dead = make_app(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    response = dead.test_client().get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 503, "E_AUTH_UNAVAILABLE")


def test_hashes_at_once_are_bounded(make_app: Callable[..., Flask], db_session: Session) -> None:
    app = make_app(max_concurrent_hashes=1, hash_wait_seconds=0.2)
    with app.app_context():
        hasher = password_hasher()
    release = threading.Event()
    holding = threading.Event()

    def hold_the_only_slot() -> None:
        with hasher._slot():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold_the_only_slot)
    thread.start()
    holding.wait(5)
    try:
        response = app.test_client().post(
            "/api/v1/auth/login", json={"email": "x@example.com", "password": PASSWORD}
        )
    finally:
        release.set()
        thread.join()
    body = assert_problem(response, 503, "E_AUTH_UNAVAILABLE")
    assert response.headers["Retry-After"] == "2"
    assert "retry" in str(body["detail"])


def test_unknown_users_are_verified_against_a_dummy_hash(make_app: Callable[..., Flask]) -> None:
    with make_app().app_context():
        hasher = password_hasher()
        assert hasher.verify(None, PASSWORD) is False
        real = hasher.hash(PASSWORD)
        assert hasher.verify(real, PASSWORD) is True
        assert hasher.verify(real, "something-else-entirely") is False
        assert hasher.verify("not-a-hash", PASSWORD) is False


def test_a_hung_redis_costs_one_short_timeout_not_every_request(
    make_app: Callable[..., Flask],
    fresh_database: str,
    own_redis: tuple[RedisServer, subprocess.Popen[bytes]],
) -> None:
    server, process = own_redis
    app = make_app(database_url=fresh_database, redis_url=server.url())
    _user(app)
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD}
    ).get_json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # cached now
    signal_tree(process, signal.SIGSTOP)
    try:
        with capture_logs() as logs:
            answers = [client.get("/api/v1/auth/me", headers=headers).status_code for _ in range(5)]
    finally:
        signal_tree(process, signal.SIGCONT)
    assert answers == [200] * 5
    # One attempt timed out; the next four went straight to PostgreSQL.
    assert [entry["event"] for entry in logs].count("auth.cache_unavailable") == 1
