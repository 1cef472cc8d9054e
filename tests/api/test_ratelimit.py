"""Rate limits: 429 problems with Retry-After, per address or per user, shared, failing open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from nexus.accounts.models import User
from nexus_dev.local_services import free_port
from tests.accounts_fixtures import PASSWORD
from tests.api.test_errors import assert_problem
from tests.support import capture_logs, dispose

LOGIN = "/api/v1/auth/login"
ADA = {"REMOTE_ADDR": "203.0.113.7"}
GRACE = {"REMOTE_ADDR": "198.51.100.9"}


@pytest.fixture
def limited(make_joined_app: Callable[..., Flask], redis: Redis) -> Callable[..., FlaskClient]:
    """A client of an app with rate limits on (``overrides``: its settings)."""

    def build(**overrides: Any) -> FlaskClient:
        return make_joined_app(rate_limits_enabled=True, **overrides).test_client()

    return build


def _login(client: FlaskClient, email: str, password: str, address: dict[str, str]) -> Any:
    return client.post(LOGIN, json={"email": email, "password": password}, environ_base=address)


def test_a_login_flood_from_one_address_gets_429s_and_another_address_signs_in(
    limited: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    client = limited(rate_limit_login="5/minute")
    statuses = [
        _login(client, "ada@example.com", "wrong-password-1", ADA).status_code for _ in range(5)
    ]
    assert statuses == [401] * 5
    refused = _login(client, "ada@example.com", PASSWORD, ADA)  # even the right password
    problem = assert_problem(refused, 429, "E_RATE_LIMITED")
    assert "5 per 1 minute" in str(problem["detail"])
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "5"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert 0 <= int(refused.headers["RateLimit-Reset"]) <= 60
    # Someone else, from elsewhere, is not held up by it.
    elsewhere = _login(client, "ada@example.com", PASSWORD, GRACE)
    assert elsewhere.status_code == 200
    assert elsewhere.headers["RateLimit-Remaining"] == "4"


def test_malformed_requests_count_too(
    limited: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    client = limited(rate_limit_login="3/minute")
    for body in (b"{not json", b"[]", b'{"email": 1}'):
        response = client.post(LOGIN, data=body, content_type="application/json", environ_base=ADA)
        assert response.status_code == 400
    assert_problem(_login(client, "x@example.com", "y", ADA), 429, "E_RATE_LIMITED")


def test_the_api_limit_is_per_user_once_signed_in_and_per_address_before(
    limited: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    make_user("grace@example.com")
    client = limited(rate_limit_api="4/minute", rate_limit_login="100/minute")
    tokens = {}
    for email, address in (("ada@example.com", GRACE), ("grace@example.com", GRACE)):
        body = _login(client, email, PASSWORD, address).get_json()["data"]
        tokens[email] = {"Authorization": f"Bearer {body['access_token']}"}
    # Two logins spent 2 of the address's 4; Ada, signed in, has 4 of her own.
    for _ in range(4):
        assert client.get("/api/v1/auth/me", headers=tokens["ada@example.com"],
                          environ_base=GRACE).status_code == 200  # fmt: skip
    over = client.get("/api/v1/auth/me", headers=tokens["ada@example.com"], environ_base=GRACE)
    assert_problem(over, 429, "E_RATE_LIMITED")
    # Grace, same address, other user: her own budget.
    assert (
        client.get(
            "/api/v1/auth/me", headers=tokens["grace@example.com"], environ_base=GRACE
        ).status_code
        == 200
    )
    # A forged token is not taken for its subject: it counts against the address.
    forged = {
        "Authorization": "Bearer " + tokens["ada@example.com"]["Authorization"][7:-4] + "AAAA"
    }
    assert client.get("/api/v1/problems", headers=forged, environ_base=GRACE).status_code == 200
    assert client.get("/api/v1/problems", headers=forged, environ_base=GRACE).status_code == 200
    assert_problem(
        client.get("/api/v1/problems", headers=forged, environ_base=GRACE), 429, "E_RATE_LIMITED"
    )


def test_two_processes_share_one_count(
    limited: Callable[..., FlaskClient], make_user: Callable[..., User]
) -> None:
    # Two apps, two limiters, one Redis: as two gunicorn workers, or two hosts.
    first = limited(rate_limit_login="4/minute")
    second = limited(rate_limit_login="4/minute")
    for client in (first, second, first, second):
        assert _login(client, "x@example.com", "y", ADA).status_code == 401
    assert_problem(_login(second, "x@example.com", "y", ADA), 429, "E_RATE_LIMITED")
    assert_problem(_login(first, "x@example.com", "y", ADA), 429, "E_RATE_LIMITED")


def test_health_and_pages_are_not_limited_and_the_switch_turns_limits_off(
    limited: Callable[..., FlaskClient], make_joined_app: Callable[..., Flask]
) -> None:
    client = limited(rate_limit_api="1/minute")
    for _ in range(3):
        health = client.get("/livez", environ_base=ADA)
        assert health.status_code == 200
        assert "RateLimit-Limit" not in health.headers
    assert client.get("/api/v1/problems", environ_base=ADA).status_code == 200
    assert_problem(client.get("/api/v1/problems", environ_base=ADA), 429, "E_RATE_LIMITED")

    off = make_joined_app(rate_limits_enabled=False, rate_limit_api="1/minute").test_client()
    for _ in range(3):
        response = off.get("/api/v1/problems", environ_base=ADA)
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response.headers


def test_with_redis_down_requests_are_served_unlimited_with_a_warning(
    make_app: Callable[..., Flask],
) -> None:
    # Nothing listens on this port: every Redis call fails at once.
    app = make_app(rate_limits_enabled=True, rate_limit_api="1/minute",
                   redis_url=f"redis://127.0.0.1:{free_port()}/0")  # fmt: skip
    client = app.test_client()
    with capture_logs() as logs:
        statuses = [client.get("/api/v1/problems").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert "ratelimit.storage_unavailable" in [entry["event"] for entry in logs]
    assert all(entry["log_level"] != "error" for entry in logs), logs
    dispose(app)


def test_every_api_operation_documents_429(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                assert "429" in operation["responses"], (method, path)
            else:
                assert "429" not in operation["responses"], (method, path)
    login = document["paths"]["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert "E_RATE_LIMITED" in str(login)
