"""Register → login → me → refresh → logout, and every way a token is refused."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import argon2
import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from nexus.accounts.models import TokenFamily, User
from nexus.audit.models import AuditLog
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem


def actions(db_session: Session) -> list[tuple[str, str]]:
    rows = db_session.execute(select(AuditLog.action, AuditLog.status).order_by(AuditLog.id))
    return [(row.action, row.status) for row in rows]


def test_register_login_me_refresh_logout(client: FlaskClient, db_session: Session) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    user = response.get_json()["data"]
    assert set(user) == {
        "id", "email", "role", "is_active", "created_at", "email_verified", "email_verified_at",
    }  # fmt: skip
    assert user["email_verified"] is False
    # The domain is normalised (case-insensitive by RFC); the local part is kept.
    assert (user["email"], user["role"], user["is_active"]) == ("Ada@example.com", "member", True)

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.get_json()["data"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    tokens = Tokens(body["access_token"], body["refresh_token"])

    me = client.get("/api/v1/auth/me", headers=tokens.headers)
    assert me.status_code == 200
    assert me.get_json()["data"]["id"] == user["id"]

    refreshed = client.post("/api/v1/auth/refresh", headers=tokens.refresh_headers)
    assert refreshed.status_code == 200
    new = refreshed.get_json()["data"]
    assert new["refresh_token"] != tokens.refresh
    new_tokens = Tokens(new["access_token"], new["refresh_token"])
    assert client.get("/api/v1/auth/me", headers=new_tokens.headers).status_code == 200

    assert client.post("/api/v1/auth/logout", headers=new_tokens.headers).status_code == 204
    for headers in (tokens.headers, new_tokens.headers):
        assert_problem(client.get("/api/v1/auth/me", headers=headers), 401, "E_UNAUTHENTICATED")
    assert_problem(
        client.post("/api/v1/auth/refresh", headers=new_tokens.refresh_headers),
        401,
        "E_UNAUTHENTICATED",
    )
    assert actions(db_session) == [
        ("auth.register", "success"),
        ("auth.login", "success"),
        ("auth.logout", "success"),
    ]


def test_reusing_a_rotated_refresh_token_revokes_the_family(
    client: FlaskClient, member: Tokens, db_session: Session
) -> None:
    rotated = client.post("/api/v1/auth/refresh", headers=member.refresh_headers).get_json()["data"]
    # The old refresh token comes back (a thief replaying it, say).
    reuse = client.post("/api/v1/auth/refresh", headers=member.refresh_headers)
    assert_problem(reuse, 401, "E_UNAUTHENTICATED")
    # Every token of the family is dead now, the legitimate holder's too.
    new = Tokens(rotated["access_token"], rotated["refresh_token"])
    assert_problem(client.get("/api/v1/auth/me", headers=new.headers), 401, "E_UNAUTHENTICATED")
    assert_problem(
        client.post("/api/v1/auth/refresh", headers=new.refresh_headers), 401, "E_UNAUTHENTICATED"
    )
    family = db_session.scalars(select(TokenFamily)).one()
    assert family.revoked_reason == "reuse"
    assert ("auth.refresh_reuse_detected", "success") in actions(db_session)


def test_login_failures_are_indistinguishable(
    client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    make_user("member@example.com")
    make_user("idle@example.com", is_active=False)
    attempts = [
        {"email": "nobody@example.com", "password": PASSWORD},
        {"email": "member@example.com", "password": "wrong-password-123"},
        {"email": "idle@example.com", "password": PASSWORD},
    ]
    bodies = []
    for attempt in attempts:
        response = client.post("/api/v1/auth/login", json=attempt)
        body = assert_problem(response, 401, "E_UNAUTHENTICATED")
        body.pop("request_id")
        bodies.append(body)
    assert bodies[0] == bodies[1] == bodies[2]
    failures = db_session.scalars(select(AuditLog).where(AuditLog.status == "failure")).all()
    assert [row.meta for row in failures] == [{"email_domain": "example.com"}] * 3
    assert all("member@" not in str(row.meta) for row in failures)


def test_login_rehashes_a_hash_made_with_old_parameters(
    client: FlaskClient, make_user: Callable[..., User], db_session: Session
) -> None:
    user = make_user("old@example.com")
    user.password_hash = argon2.PasswordHasher(time_cost=2, memory_cost=8192).hash(PASSWORD)
    db_session.commit()
    old = user.password_hash
    assert (
        client.post(
            "/api/v1/auth/login", json={"email": "old@example.com", "password": PASSWORD}
        ).status_code
        == 200
    )
    db_session.refresh(user)
    assert user.password_hash != old
    assert "t=1" in user.password_hash  # the configured time cost
    assert user.last_login_at is not None


def _forge(app: Flask, **changes: object) -> str:
    """A token like ours, then altered."""
    secret = app.config["JWT_SECRET_KEY"]
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "fam": str(uuid.uuid4()),
        "type": "access",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "fresh": False,
    }
    algorithm = str(changes.pop("algorithm", "HS256"))
    key = str(changes.pop("key", secret))
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not OMIT}
    with warnings.catch_warnings():
        # PyJWT warns that our 48-byte test secret is short for HS512; forging is the point.
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=algorithm)


OMIT = object()  # a claim _forge leaves out


def test_a_catalogue_of_broken_tokens_is_refused_alike(
    client: FlaskClient, member: Tokens, app: Flask, db_session: Session
) -> None:
    me = db_session.scalars(select(User)).one()
    family = db_session.scalars(select(TokenFamily)).one()
    valid_claims = {"sub": str(me.id), "fam": str(family.id)}
    header, payload, signature = member.access.split(".")
    past = datetime.now(UTC) - timedelta(seconds=5)
    none_token = jwt.encode({**valid_claims, "type": "access"}, None, algorithm="none")  # type: ignore[arg-type]
    catalogue = {
        "missing": None,
        "not a jwt": "Bearer not-a-jwt",
        "wrong scheme": f"Basic {member.access}",
        "empty bearer": "Bearer ",
        "bad signature": f"Bearer {header}.{payload}.{signature[::-1]}",
        "other secret": f"Bearer {_forge(app, key='x' * 40, **valid_claims)}",
        "expired": f"Bearer {_forge(app, exp=past, **valid_claims)}",
        "alg none": f"Bearer {none_token}",
        "HS512": f"Bearer {_forge(app, algorithm='HS512', **valid_claims)}",
        "refresh as access": f"Bearer {member.refresh}",
        "unknown family": f"Bearer {_forge(app, sub=str(me.id))}",
        "no family claim": f"Bearer {_forge(app, fam=None, sub=str(me.id))}",
        "someone else's family": f"Bearer {_forge(app, fam=str(family.id))}",
        # Signed with our secret, but without the claims every token of ours has.
        "no exp": f"Bearer {_forge(app, exp=OMIT, **valid_claims)}",
        "no type": f"Bearer {_forge(app, type=OMIT, **valid_claims)}",
    }
    for name, authorization in catalogue.items():
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get("/api/v1/auth/me", headers=headers)
        body = assert_problem(response, 401, "E_UNAUTHENTICATED")
        assert "msg" not in body, name
        assert response.headers["WWW-Authenticate"] == "Bearer", name
    # The forged-but-valid control: the same claims, properly signed, work.
    control = _forge(app, **valid_claims)
    assert (
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {control}"}).status_code
        == 200
    )


def test_access_token_cannot_refresh(client: FlaskClient, member: Tokens) -> None:
    assert_problem(
        client.post("/api/v1/auth/refresh", headers=member.headers), 401, "E_UNAUTHENTICATED"
    )


def test_password_change_ends_other_sessions_only(
    client: FlaskClient, member: Tokens, login: Callable[..., Tokens], db_session: Session
) -> None:
    other = login()
    response = client.post(
        "/api/v1/auth/password",
        headers=member.headers,
        json={"current_password": PASSWORD, "new_password": "orchid-walrus-lantern-77"},
    )
    assert response.status_code == 204
    assert client.get("/api/v1/auth/me", headers=member.headers).status_code == 200
    assert_problem(client.get("/api/v1/auth/me", headers=other.headers), 401, "E_UNAUTHENTICATED")
    assert (
        client.post(
            "/api/v1/auth/login",
            json={"email": "member@example.com", "password": "orchid-walrus-lantern-77"},
        ).status_code
        == 200
    )
    assert ("auth.password_change", "success") in actions(db_session)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"current_password": "wrong-password-99", "new_password": "orchid-walrus-lantern-77"},
            "current_password",
        ),
        ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "password1234"}, "new_password"),
    ],
)
def test_password_change_refusals(
    client: FlaskClient, member: Tokens, body: dict[str, str], field: str
) -> None:
    response = client.post("/api/v1/auth/password", headers=member.headers, json=body)
    problem = assert_problem(response, 400, "E_INVALID_REQUEST")
    assert [error["field"] for error in problem["errors"]] == [field]  # type: ignore[attr-defined]


def test_deleting_the_account_refuses_its_tokens_and_keeps_its_audit_rows(
    client: FlaskClient, member: Tokens, db_session: Session
) -> None:
    user_id = db_session.scalars(select(User.id)).one()
    wrong = client.delete(
        "/api/v1/auth/me", headers=member.headers, json={"password": "nope-nope-nope"}
    )
    assert_problem(wrong, 400, "E_INVALID_REQUEST")
    assert (
        client.delete(
            "/api/v1/auth/me", headers=member.headers, json={"password": PASSWORD}
        ).status_code
        == 204
    )
    assert_problem(client.get("/api/v1/auth/me", headers=member.headers), 401, "E_UNAUTHENTICATED")
    assert_problem(
        client.post("/api/v1/auth/refresh", headers=member.refresh_headers),
        401,
        "E_UNAUTHENTICATED",
    )
    assert db_session.get(User, user_id) is None
    deleted = db_session.scalars(select(AuditLog).where(AuditLog.action == "account.delete")).one()
    assert deleted.target_id == str(user_id)
    assert deleted.actor_id == user_id
    assert (
        db_session.execute(
            text("SELECT count(*) FROM audit_logs WHERE actor_id = :id"), {"id": user_id}
        ).scalar_one()
        >= 2
    )


def test_checks_run_401_then_400(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/password", data="not json", content_type="text/plain")
    assert_problem(response, 401, "E_UNAUTHENTICATED")
