"""Addresses proven and passwords reset by mailed links, through a real SMTP server."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nexus.accounts.models import EmailToken, User
from nexus.jobs.models import Job
from nexus.mail import jobs as mail_jobs
from nexus.mail.models import OutboundEmail
from nexus_dev.mailcatcher import Catcher
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem
from tests.libraries.helpers import run_jobs
from tests.support import capture_logs

NEW_PASSWORD = "marble-quince-lantern-7"


def _token(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    found = re.search(r"\?token=([A-Za-z0-9_-]+)", text.get_content())
    assert found, text.get_content()
    return found.group(1)


def _register(client: FlaskClient, email: str = "ada@example.com") -> Tokens:
    assert (
        client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        ).status_code
        == 201
    )
    body = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    data: dict[str, Any] = body.get_json()["data"]
    return Tokens(data["access_token"], data["refresh_token"])


def test_registration_mails_a_link_that_verifies_the_address_once(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher
) -> None:
    ada = _register(client)
    assert (
        client.get("/api/v1/auth/me", headers=ada.headers).get_json()["data"]["email_verified"]
        is False
    )
    run_jobs(app, redis)
    [message] = mailbox.wait(1, timeout=10)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Confirm your e-mail address"
    assert message.get_body(preferencelist=("html",)) is not None  # both parts
    token = _token(message)
    assert (
        "http://localhost:5000/verify-email?token="
        in message.get_body(preferencelist=("plain",)).get_content()
    )  # type: ignore[union-attr]

    verified = client.post("/api/v1/auth/verify", json={"token": token})
    assert verified.status_code == 200
    assert verified.get_json()["data"]["email_verified"] is True
    me = client.get("/api/v1/auth/me", headers=ada.headers).get_json()["data"]
    assert me["email_verified"] is True
    # Used once: a second time, and a forged one, are the same 400.
    again = assert_problem(
        client.post("/api/v1/auth/verify", json={"token": token}), 400, "E_TOKEN_INVALID"
    )
    forged = assert_problem(
        client.post("/api/v1/auth/verify", json={"token": "A" * 43}), 400, "E_TOKEN_INVALID"
    )
    assert again["detail"] == forged["detail"]
    # Verified: nothing to resend.
    assert_problem(
        client.post("/api/v1/auth/verify/resend", headers=ada.headers), 409, "E_CONFLICT"
    )


def test_an_expired_link_is_refused_and_a_resent_one_works(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher, db_session: Session
) -> None:
    ada = _register(client)
    run_jobs(app, redis)
    first = _token(mailbox.wait(1, timeout=10)[0])
    db_session.execute(
        update(EmailToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db_session.commit()
    assert_problem(
        client.post("/api/v1/auth/verify", json={"token": first}), 400, "E_TOKEN_INVALID"
    )
    assert client.post("/api/v1/auth/verify/resend", headers=ada.headers).status_code == 202
    run_jobs(app, redis)
    second = _token(mailbox.wait(2, timeout=10)[1])
    assert second != first
    assert client.post("/api/v1/auth/verify", json={"token": second}).status_code == 200


@pytest.mark.parametrize("token", ["", "short", "has spaces in it here", "x" * 201, "é" * 30])
def test_a_malformed_token_is_400_naming_the_field(client: FlaskClient, token: str) -> None:
    problem = assert_problem(
        client.post("/api/v1/auth/verify", json={"token": token}), 400, "E_INVALID_REQUEST"
    )
    assert [error["field"] for error in problem["errors"]] == ["token"]  # type: ignore[union-attr]


def test_forgot_password_answers_alike_and_the_mailed_token_resets_once(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher, make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    old_login = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).get_json()["data"]
    answers = []
    for email in ("ada@example.com", "nobody@example.com", "ADA@example.com"):
        started = time.perf_counter()
        response = client.post("/api/v1/auth/password/forgot", json={"email": email})
        answers.append((response.status_code, response.get_data(), time.perf_counter() - started))
    assert {(status, body) for status, body, _ in answers} == {(202, b"")}
    run_jobs(app, redis)
    messages = mailbox.wait(2, timeout=10)
    assert [m["To"] for m in messages] == ["ada@example.com", "ada@example.com"]
    first, second = (_token(m) for m in messages)

    reset = client.post(
        "/api/v1/auth/password/reset", json={"token": second, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    # Once; and the other link of the same account stops working with it.
    for token in (second, first):
        assert_problem(
            client.post(
                "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
            ),
            400,
            "E_TOKEN_INVALID",
        )
    login = {"email": "ada@example.com"}
    assert (
        client.post("/api/v1/auth/login", json={**login, "password": PASSWORD}).status_code == 401
    )
    assert (
        client.post("/api/v1/auth/login", json={**login, "password": NEW_PASSWORD}).status_code
        == 200
    )
    # Every earlier login ended, and the owner is told.
    refreshed = client.post(
        "/api/v1/auth/refresh",
        headers={"Authorization": f"Bearer {old_login['refresh_token']}"},
    )
    assert refreshed.status_code == 401
    run_jobs(app, redis)
    assert mailbox.wait(3, timeout=10)[2]["Subject"] == "Your password was changed"


def test_a_reset_keeps_the_password_policy(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher, make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    client.post("/api/v1/auth/password/forgot", json={"email": "ada@example.com"})
    run_jobs(app, redis)
    token = _token(mailbox.wait(1, timeout=10)[0])
    weak = client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "password"}
    )
    problem = assert_problem(weak, 400, "E_INVALID_REQUEST")
    assert {e["field"] for e in problem["errors"]} == {"new_password"}  # type: ignore[union-attr]
    # The refused attempt did not spend the link.
    assert (
        client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
        ).status_code
        == 204
    )


def test_a_new_address_counts_once_verified_and_the_old_one_is_told(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher
) -> None:
    ada = _register(client)
    wrong = client.post(
        "/api/v1/auth/email",
        json={"new_email": "ada@new.example.com", "password": "not-it-at-all"},
        headers=ada.headers,
    )
    assert_problem(wrong, 400, "E_INVALID_REQUEST")
    asked = client.post(
        "/api/v1/auth/email",
        json={"new_email": "ada@new.example.com", "password": PASSWORD},
        headers=ada.headers,
    )
    assert asked.status_code == 202
    assert client.get("/api/v1/auth/me", headers=ada.headers).get_json()["data"]["email"] == (
        "ada@example.com"
    )
    run_jobs(app, redis)
    change = next(m for m in mailbox.wait(2, timeout=10) if m["To"] == "ada@new.example.com")
    assert client.post("/api/v1/auth/verify", json={"token": _token(change)}).status_code == 200
    me = client.get("/api/v1/auth/me", headers=ada.headers).get_json()["data"]
    assert (me["email"], me["email_verified"]) == ("ada@new.example.com", True)
    run_jobs(app, redis)
    notice = mailbox.wait(3, timeout=10)[2]
    assert (notice["To"], notice["Subject"]) == (
        "ada@example.com",
        "Your account's e-mail address was changed",
    )


def test_with_verification_required_an_unverified_account_cannot_sign_in(
    make_joined_app: Callable[..., Flask], redis: Redis, mailbox: Catcher
) -> None:
    app = make_joined_app(require_verified_email=True)
    client = app.test_client()
    client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    login = {"email": "ada@example.com", "password": PASSWORD}
    assert_problem(client.post("/api/v1/auth/login", json=login), 403, "E_EMAIL_UNVERIFIED")
    run_jobs(app, redis)
    client.post("/api/v1/auth/verify", json={"token": _token(mailbox.wait(1, timeout=10)[0])})
    assert client.post("/api/v1/auth/login", json=login).status_code == 200


def test_with_the_smtp_server_down_a_reset_is_202_and_the_mail_arrives_once_it_is_back(
    make_joined_app: Callable[..., Flask],
    settings: Any,
    redis: Redis,
    mailbox: Catcher,
    make_user: Callable[..., User],
    db_session: Session,
) -> None:
    from nexus_dev.local_services import free_port  # noqa: PLC0415

    make_user("ada@example.com")
    app = make_joined_app(smtp_port=free_port())  # nothing listens there
    client = app.test_client()
    assert (
        client.post("/api/v1/auth/password/forgot", json={"email": "ada@example.com"}).status_code
        == 202
    )
    run_jobs(app, redis)
    db_session.expire_all()
    job = db_session.scalar(select(Job).where(Job.name == "mail.send"))
    assert job is not None
    assert (job.status, job.attempts) == ("scheduled", 1)  # retried later, with backoff
    message_id = job.arguments["message_id"]
    assert mailbox.messages == []
    # The server is back: the retry delivers it, and a second run sends nothing more.
    app.extensions["nexus.settings"] = settings
    with app.app_context():
        assert mail_jobs.send(message_id)["status"] == "sent"
        assert mail_jobs.send(message_id)["status"] == "already_sent"
    assert len(mailbox.wait(1, timeout=10)) == 1
    row = db_session.get(OutboundEmail, uuid.UUID(message_id))
    assert row is not None
    db_session.refresh(row)
    assert row.sent_at is not None


def test_no_address_or_token_reaches_a_log_line_or_a_job_row(
    app: Flask, client: FlaskClient, redis: Redis, mailbox: Catcher, db_session: Session
) -> None:
    with capture_logs() as logs:
        _register(client, "secret.person@example.com")
        client.post("/api/v1/auth/password/forgot", json={"email": "secret.person@example.com"})
        run_jobs(app, redis)
        tokens = [_token(m) for m in mailbox.wait(2, timeout=10)]
        client.post("/api/v1/auth/verify", json={"token": tokens[0]})
        client.post(
            "/api/v1/auth/password/reset", json={"token": tokens[1], "new_password": NEW_PASSWORD}
        )
        run_jobs(app, redis)
    everything = repr(logs)
    for secret in ("secret.person", *tokens):
        assert secret not in everything
    rows = db_session.scalars(select(Job).where(Job.name == "mail.send")).all()
    assert len(rows) == 3
    for row in rows:
        assert set(row.arguments) == {"message_id"}
        assert "secret.person" not in repr(row.arguments) + repr(row.result)


def test_over_its_limits_a_reset_request_is_the_same_202_and_sends_nothing(
    make_joined_app: Callable[..., Flask],
    redis: Redis,
    mailbox: Catcher,
    make_user: Callable[..., User],
) -> None:
    make_user("ada@example.com")
    app = make_joined_app(
        rate_limits_enabled=True,
        rate_limit_password_forgot="100/hour",
        rate_limit_password_forgot_account="2/hour",
    )
    client = app.test_client()
    answers = [
        client.post("/api/v1/auth/password/forgot", json={"email": "ada@example.com"})
        for _ in range(4)
    ]
    assert {(a.status_code, a.get_data()) for a in answers} == {(202, b"")}
    run_jobs(app, redis)
    # Every job has run (burst): the account's limit let two through, no more.
    assert len(mailbox.wait(2, timeout=10)) == 2
    assert len(mailbox.messages) == 2
