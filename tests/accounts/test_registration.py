"""Registration: the password policy, duplicates, and the open/invite/closed modes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.accounts.models import Invite, User
from nexus.accounts.passwords import policy_problems
from nexus.accounts.services import _invite_digest
from nexus.audit.models import AuditLog
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-one", "Use at least 12 characters."),
        ("x" * 129, "Use at most 128 characters."),
        ("qwerty123456", "This password is too common"),
        ("password123456!", "This password is too common"),  # padded
        ("monkeymonkeymonkey", "This password is too common"),  # repeated
        ("aaaaaaaaaaaaaaaa", "This password is too common"),
        ("new@example.com", "must not be your e-mail address"),
    ],
)
def test_policy_refusals(client: FlaskClient, password: str, message: str) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": password}
    )
    body = assert_problem(response, 400, "E_INVALID_REQUEST")
    [error] = body["errors"]  # type: ignore[misc]
    assert error["field"] == "password"
    assert message in error["message"]


def test_policy_accepts_long_uncommon_passwords_of_any_characters() -> None:
    assert policy_problems("correct horse battery staple", email="a@b.c") == []
    assert policy_problems("ünïcødé pässphrase ✓", email="a@b.c") == []


def test_duplicate_email_is_409_whatever_its_case(client: FlaskClient) -> None:
    first = {"email": "dup@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/register", json=first).status_code == 201
    again = client.post(
        "/api/v1/auth/register", json={"email": "DUP@example.com", "password": PASSWORD}
    )
    assert_problem(again, 409, "E_CONFLICT")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "password": PASSWORD},
        {"email": "a@example.com"},
        {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
    ],
)
def test_malformed_registrations_are_400(client: FlaskClient, body: dict[str, str]) -> None:
    assert_problem(client.post("/api/v1/auth/register", json=body), 400, "E_INVALID_REQUEST")


def test_closed_registration_is_403(make_app: Callable[..., Flask], db_session: Session) -> None:
    client = make_app(registration_mode="closed").test_client()
    response = client.post(
        "/api/v1/auth/register", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert_problem(response, 403, "E_FORBIDDEN")


def test_invite_mode(
    make_joined_app: Callable[..., Flask],
    admin: Tokens,
    client: FlaskClient,
    db_session: Session,
) -> None:
    invite_app = make_joined_app(registration_mode="invite")
    invited = invite_app.test_client()
    created = client.post(
        "/api/v1/admin/invites", headers=admin.headers, json={"expires_in_hours": 2}
    )
    assert created.status_code == 201
    code = created.get_json()["data"]["code"]
    assert db_session.scalars(select(Invite.code_sha256)).one() != code  # only the hash is kept

    for bad in (None, "made-up-code"):
        body = {"email": "guest@example.com", "password": PASSWORD}
        if bad:
            body["invite_code"] = bad
        problem = assert_problem(
            invited.post("/api/v1/auth/register", json=body), 400, "E_INVALID_REQUEST"
        )
        assert problem["errors"][0]["field"] == "invite_code"  # type: ignore[index]

    ok = invited.post(
        "/api/v1/auth/register",
        json={"email": "guest@example.com", "password": PASSWORD, "invite_code": code},
    )
    assert ok.status_code == 201
    reused = invited.post(
        "/api/v1/auth/register",
        json={"email": "other@example.com", "password": PASSWORD, "invite_code": code},
    )
    assert_problem(reused, 400, "E_INVALID_REQUEST")
    guest = db_session.scalars(select(User).where(User.email == "guest@example.com")).one()
    invite = db_session.scalars(select(Invite)).one()
    assert invite.used_by == guest.id
    logged = [row.action for row in db_session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert "invite.create" in logged
    assert "invite.use" in logged


def test_expired_invites_are_refused(
    make_joined_app: Callable[..., Flask], client: FlaskClient, db_session: Session
) -> None:
    db_session.add(
        Invite(
            code_sha256=_invite_digest("old-code"),
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    )
    db_session.commit()
    invite_app = make_joined_app(registration_mode="invite")
    response = invite_app.test_client().post(
        "/api/v1/auth/register",
        json={"email": "late@example.com", "password": PASSWORD, "invite_code": "old-code"},
    )
    assert_problem(response, 400, "E_INVALID_REQUEST")


def _login_status(client: FlaskClient, email: str) -> int:
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    ).status_code


def test_an_address_with_non_ascii_capitals_is_one_account_that_can_sign_in(
    client: FlaskClient,
) -> None:
    # PostgreSQL's lower() under the C locale leaves É alone: this account
    # used to register and then never sign in.
    created = client.post(
        "/api/v1/auth/register", json={"email": "Émile.Curl@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["data"]["email"] == "Émile.Curl@example.com"  # shown as given
    for spelling in (
        "Émile.Curl@example.com",
        "émile.curl@EXAMPLE.com",
        "E\u0301mile.curl@example.com",
    ):
        assert _login_status(client, spelling) == 200, spelling
    again = client.post(
        "/api/v1/auth/register", json={"email": "ÉMILE.CURL@example.com", "password": PASSWORD}
    )
    assert_problem(again, 409, "E_CONFLICT")


def test_an_internationalised_domain_is_one_domain_however_written(client: FlaskClient) -> None:
    created = client.post(
        "/api/v1/auth/register", json={"email": "ada@Bücher.example", "password": PASSWORD}
    )
    assert created.status_code == 201, created.get_json()
    assert _login_status(client, "ada@xn--bcher-kva.example") == 200
    taken = client.post(
        "/api/v1/auth/register", json={"email": "ADA@xn--bcher-kva.example", "password": PASSWORD}
    )
    assert_problem(taken, 409, "E_CONFLICT")


def test_admins_find_users_by_any_spelling_of_a_prefix(
    client: FlaskClient, admin: Tokens, make_user: Callable[..., User]
) -> None:
    make_user("Émile.Curl@example.com")
    make_user("emily@example.com")
    response = client.get("/api/v1/admin/users?email_prefix=ÉMILE", headers=admin.headers)
    assert [user["email"] for user in response.get_json()["data"]] == ["Émile.Curl@example.com"]
