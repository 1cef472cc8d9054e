"""Login lockout: failures lock an account for a while, known addresses pass, nothing leaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.accounts.lockout import PREFIX
from nexus.accounts.models import User
from nexus.audit.models import AuditLog
from nexus_dev.local_services import free_port
from tests.accounts_fixtures import PASSWORD
from tests.support import capture_logs, dispose, wait_for

LOGIN = "/api/v1/auth/login"
ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}
HOME = {"REMOTE_ADDR": "198.51.100.10"}
WRONG = "not-the-password-9"


@pytest.fixture
def locking(make_joined_app: Callable[..., Flask], redis: Redis) -> Callable[..., FlaskClient]:
    def build(**overrides: Any) -> FlaskClient:
        values = {"login_lockout_failures": 3, "login_lockout_seconds": 60, **overrides}
        return make_joined_app(**values).test_client()

    return build


def _login(client: FlaskClient, email: str, password: str, address: dict[str, str]) -> Any:
    return client.post(LOGIN, json={"email": email, "password": password}, environ_base=address)


def _answer(response: Any) -> tuple[int, dict[str, Any]]:
    """What a client can compare between two answers: status and body, but the request id."""
    body = dict(response.get_json())
    body.pop("request_id", None)
    return response.status_code, body


def test_failures_lock_the_account_and_a_locked_one_looks_like_an_unknown_one(
    locking: Callable[..., FlaskClient], make_user: Callable[..., User], db_session: Session
) -> None:
    ada = make_user("ada@example.com")
    client = locking()
    for _ in range(3):
        assert _login(client, "ada@example.com", WRONG, ATTACKER).status_code == 401
    locked = _login(client, "ada@example.com", PASSWORD, ATTACKER)  # the right password
    unknown = _login(client, "nobody@example.com", PASSWORD, ATTACKER)
    wrong = _login(client, "ada@example.com", WRONG, ATTACKER)
    assert _answer(locked) == _answer(unknown) == _answer(wrong)
    assert locked.status_code == 401
    assert set(locked.headers.keys()) == set(unknown.headers.keys())
    # The operator sees what happened.
    rows = db_session.execute(
        select(AuditLog.action, AuditLog.status, AuditLog.meta)
        .where(AuditLog.target_id == str(ada.id))
        .order_by(AuditLog.id)
    ).all()
    assert [(action, status) for action, status, _ in rows] == [
        ("auth.login", "failure"), ("auth.login", "failure"), ("auth.login", "failure"),
        ("auth.lockout", "failure"), ("auth.login", "failure"), ("auth.login", "failure"),
    ]  # fmt: skip
    assert rows[3][2] == {"seconds": 60}
    assert rows[4][2]["locked"] is True


def test_an_address_the_account_signed_in_from_is_not_locked_out(
    locking: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    client = locking()
    assert _login(client, "ada@example.com", PASSWORD, HOME).status_code == 200
    for _ in range(3):
        _login(client, "ada@example.com", WRONG, ATTACKER)
    assert _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 401
    # The owner, at home, signs in; the attacker still cannot.
    assert _login(client, "ada@example.com", PASSWORD, HOME).status_code == 200
    assert _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 401


def test_the_lock_ends_after_its_period_and_the_next_one_is_longer(
    locking: Callable[..., FlaskClient], make_user: Callable[..., User], redis: Redis
) -> None:
    ada = make_user("ada@example.com")
    client = locking(login_lockout_seconds=1, login_lockout_max_seconds=3)
    for _ in range(3):
        _login(client, "ada@example.com", WRONG, ATTACKER)
    assert _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 401
    wait_for(
        lambda: _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 200,
        timeout=10,
        interval=0.3,
    )
    # The good login forgot the level: the next lock is the first period again.
    for _ in range(3):
        _login(client, "ada@example.com", WRONG, ATTACKER)
    assert redis.ttl(f"{PREFIX}until:{ada.id}") == 1
    redis.delete(f"{PREFIX}until:{ada.id}")  # as if it had expired
    # Without a good login in between, each lock doubles, up to the maximum.
    ttls = []
    for _ in range(3):
        for _ in range(3):
            _login(client, "ada@example.com", WRONG, ATTACKER)
        ttls.append(redis.ttl(f"{PREFIX}until:{ada.id}"))
        redis.delete(f"{PREFIX}until:{ada.id}")
    assert ttls == [2, 3, 3]


def test_zero_failures_turns_the_lockout_off(
    locking: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    client = locking(login_lockout_failures=0)
    for _ in range(10):
        _login(client, "ada@example.com", WRONG, ATTACKER)
    assert _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 200


def test_with_redis_down_there_is_no_lock_and_logins_work(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(
        database_url=fresh_database,
        login_lockout_failures=1,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    client = app.test_client()
    client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    with capture_logs() as logs:
        assert _login(client, "ada@example.com", WRONG, ATTACKER).status_code == 401
        assert _login(client, "ada@example.com", PASSWORD, ATTACKER).status_code == 200
    assert "auth.lockout_unavailable" in [entry["event"] for entry in logs]
    dispose(app)
