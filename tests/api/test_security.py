"""The HTTP edge: security headers on every answer, CORS by allowlist, trusted proxies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.accounts.models import User
from nexus.audit.models import AuditLog
from nexus.config import Settings
from tests.accounts_fixtures import PASSWORD, Tokens

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _assert_secure(response: object, *, policy: str = JSON_POLICY) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == policy
    assert "Strict-Transport-Security" not in headers  # not configured
    assert "Werkzeug" not in headers.get("Server", "")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/livez", 200),
        ("GET", "/api/v1/problems", 200),
        ("GET", "/api/v1/no-such-thing", 404),
        ("GET", "/nowhere", 404),
        ("DELETE", "/api/v1/auth/login", 405),
        ("GET", "/api/v1/auth/me", 401),
        ("POST", "/api/v1/auth/login", 415),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_answer_carries_the_security_headers(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    _assert_secure(response)


def test_pages_keep_their_own_policy_and_the_docs_get_one_swagger_ui_runs_under(
    client: FlaskClient,
) -> None:
    jobs_page = client.get("/admin/jobs")
    assert "script-src 'self';" in jobs_page.headers["Content-Security-Policy"]
    docs = client.get("/docs/")
    assert docs.status_code == 200
    policy = docs.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self'" in policy


def test_answers_with_tokens_or_personal_data_are_never_stored(
    client: FlaskClient, member: Tokens
) -> None:
    login = client.post(
        "/api/v1/auth/login", json={"email": "member@example.com", "password": PASSWORD}
    )
    refresh = client.post("/api/v1/auth/refresh", headers=member.refresh_headers)
    me = client.get("/api/v1/auth/me", headers=member.headers)
    refused = client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "y"})
    for response in (login, refresh, me, refused):
        assert response.headers["Cache-Control"] == "no-store", response.request.path
        assert response.headers["Pragma"] == "no-cache"
    # Public documents may be cached.
    assert "no-store" not in client.get("/api/v1/problems").headers.get("Cache-Control", "")


def test_hsts_is_sent_when_configured(make_app: Callable[..., Flask]) -> None:
    response = make_app(hsts_seconds=31_536_000).test_client().get("/livez")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


ALLOWED = "https://app.example.com"


def test_cors_answers_an_allowed_origin_and_not_another(make_app: Callable[..., Flask]) -> None:
    client = make_app(cors_origins=f"{ALLOWED}, https://admin.example.com").test_client()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    allowed = client.options("/api/v1/auth/login", headers={"Origin": ALLOWED, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    actual = client.get("/api/v1/problems", headers={"Origin": ALLOWED})
    assert actual.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "RateLimit-Remaining" in actual.headers["Access-Control-Expose-Headers"]

    evil = "https://evil.example.net"
    refused = client.options("/api/v1/auth/login", headers={"Origin": evil, **preflight})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/api/v1/problems", headers={"Origin": evil}).headers
    )


def test_no_cors_by_default(client: FlaskClient) -> None:
    response = client.get("/api/v1/problems", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cors_origins": "*", "cors_allow_credentials": True}, "credentials are refused in prod"),
        ({"cors_origins": "app.example.com"}, "is not an origin"),
        ({"rate_limit_login": "ten per minute"}, 'must be like "10/minute"'),
    ],
)
def test_unsafe_or_malformed_protection_settings_are_refused_at_start(
    settings: Settings, overrides: dict[str, object], message: str
) -> None:
    values = {
        **settings.model_dump(),
        "env": "prod",
        "secret_key": "s" * 40,
        "jwt_secret": "j" * 40,
        "internal_secret": "i" * 40,
        "debug": False,
        **overrides,
    }
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _failed_login_ip(db_session: Session) -> str:
    row = db_session.scalars(
        select(AuditLog).where(AuditLog.action == "auth.login").order_by(AuditLog.id.desc())
    ).first()
    assert row is not None
    return str(row.ip)


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_clients(
    make_joined_app: Callable[..., Flask],
    make_user: Callable[..., User],
    db_session: Session,
) -> None:
    make_user("ada@example.com")
    forwarded = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    body = {"email": "ada@example.com", "password": "wrong-password-1"}

    behind_one = make_joined_app(trusted_proxies=1).test_client()
    behind_one.post("/api/v1/auth/login", json=body, headers=forwarded, environ_base=proxy)
    assert _failed_login_ip(db_session) == "6.6.6.6"

    # Not configured: the header is the client's say-so, and ignored.
    direct = make_joined_app(trusted_proxies=0).test_client()
    direct.post("/api/v1/auth/login", json=body, headers=forwarded, environ_base=proxy)
    assert _failed_login_ip(db_session) == "10.0.0.2"

    # Two proxies: the address the second one saw, not what the client wrote first.
    chain = {"X-Forwarded-For": "1.2.3.4, 7.7.7.7, 10.0.0.1"}
    behind_two = make_joined_app(trusted_proxies=2).test_client()
    behind_two.post("/api/v1/auth/login", json=body, headers=chain, environ_base=proxy)
    assert _failed_login_ip(db_session) == "7.7.7.7"


def test_no_cookie_session_is_read_or_set(app: Flask, client: FlaskClient, member: Tokens) -> None:
    client.set_cookie("session", "eyJ4IjoxfQ.forged.signature")
    for path in ("/livez", "/api/v1/auth/me", "/docs/", "/nowhere"):
        response = client.get(path, headers=member.headers)
        assert "Set-Cookie" not in response.headers, path
    with app.test_request_context("/"):
        from flask import session  # noqa: PLC0415 - the request's own

        assert not session
        with pytest.raises(RuntimeError):
            session["x"] = 1  # nothing can be stored: no view can start a cookie session
