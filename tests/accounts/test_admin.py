"""Admin endpoints: who may call them, what they change, and the last-admin rule."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.accounts.auth import password_hasher
from nexus.accounts.models import User
from nexus.audit.models import AuditLog
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem

ADMIN_ENDPOINTS = [
    ("GET", "/api/v1/admin/users", None),
    ("PATCH", f"/api/v1/admin/users/{uuid.uuid4()}", {"role": "admin"}),
    ("DELETE", f"/api/v1/admin/users/{uuid.uuid4()}", None),
    ("POST", "/api/v1/admin/invites", {}),
    ("GET", "/api/v1/admin/audit-logs", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
def test_members_get_403_and_strangers_401(
    client: FlaskClient, member: Tokens, db_session: Session, method: str, path: str, body: object
) -> None:
    response = client.open(path, method=method, headers=member.headers, json=body)
    assert_problem(response, 403, "E_FORBIDDEN")
    assert_problem(client.open(path, method=method, json=body), 401, "E_UNAUTHENTICATED")
    [refusal] = db_session.scalars(select(AuditLog).where(AuditLog.status == "failure")).all()
    assert refusal.action == "authz.forbidden"
    assert refusal.actor_role == "member"
    assert refusal.meta["method"] == method


def test_list_users_filters_and_pages(
    client: FlaskClient, admin: Tokens, make_user: Callable[..., User]
) -> None:
    for n in range(5):
        make_user(f"user{n}@example.com")
    make_user("zed@other.org", is_active=False)
    seen = []
    url = "/api/v1/admin/users?limit=2&role=member&is_active=true"
    while url:
        body = client.get(url, headers=admin.headers).get_json()
        assert body["meta"]["limit"] == 2
        seen += [user["email"] for user in body["data"]]
        cursor = body["meta"]["next_cursor"]
        url = (
            f"/api/v1/admin/users?limit=2&role=member&is_active=true&cursor={cursor}"
            if cursor
            else ""
        )
    # Every page once, nothing twice (rows made in one transaction share
    # created_at, so the id breaks the tie and decides the order).
    assert sorted(seen) == [f"user{n}@example.com" for n in range(5)]
    assert len(seen) == len(set(seen))
    prefix = client.get("/api/v1/admin/users?email_prefix=ZED", headers=admin.headers).get_json()
    assert [user["email"] for user in prefix["data"]] == ["zed@other.org"]
    wildcard = client.get("/api/v1/admin/users?email_prefix=%25", headers=admin.headers).get_json()
    assert wildcard["data"] == []  # % is a character to match, not a wildcard


@pytest.mark.parametrize("query", ["role=owner", "is_active=maybe", "cursor=bogus", "limit=0"])
def test_list_users_bad_queries_are_400(client: FlaskClient, admin: Tokens, query: str) -> None:
    response = client.get(f"/api/v1/admin/users?{query}", headers=admin.headers)
    assert_problem(response, 400, "E_INVALID_REQUEST")


def test_role_and_activation_changes_apply_at_once(
    client: FlaskClient,
    admin: Tokens,
    make_user: Callable[..., User],
    login: Callable[..., Tokens],
    db_session: Session,
) -> None:
    user = make_user("promote@example.com")
    tokens = login("promote@example.com")
    assert_problem(client.get("/api/v1/admin/users", headers=tokens.headers), 403, "E_FORBIDDEN")
    promoted = client.patch(
        f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"role": "admin"}
    )
    assert promoted.status_code == 200
    assert promoted.get_json()["data"]["role"] == "admin"
    # The same token, no new login: the role is read per request.
    assert client.get("/api/v1/admin/users", headers=tokens.headers).status_code == 200

    off = client.patch(
        f"/api/v1/admin/users/{user.id}", headers=admin.headers, json={"is_active": False}
    )
    assert off.get_json()["data"]["is_active"] is False
    assert_problem(client.get("/api/v1/auth/me", headers=tokens.headers), 401, "E_UNAUTHENTICATED")
    assert_problem(
        client.post(
            "/api/v1/auth/login", json={"email": "promote@example.com", "password": PASSWORD}
        ),
        401,
        "E_UNAUTHENTICATED",
    )
    audited = db_session.scalars(
        select(AuditLog)
        .where(AuditLog.target_id == str(user.id), AuditLog.action.like("user.%"))
        .order_by(AuditLog.id)
    ).all()
    assert [(row.action, row.meta) for row in audited] == [
        ("user.role_change", {"from": "member", "to": "admin"}),
        ("user.activation_change", {"from": True, "to": False}),
    ]
    assert all(row.actor_role == "admin" for row in audited)


def test_unknown_users_are_404(client: FlaskClient, admin: Tokens) -> None:
    missing = uuid.uuid4()
    assert_problem(
        client.patch(
            f"/api/v1/admin/users/{missing}", headers=admin.headers, json={"role": "admin"}
        ),
        404,
        "E_NOT_FOUND",
    )
    assert_problem(
        client.delete(f"/api/v1/admin/users/{missing}", headers=admin.headers), 404, "E_NOT_FOUND"
    )
    assert_problem(
        client.delete("/api/v1/admin/users/not-a-uuid", headers=admin.headers), 404, "E_NOT_FOUND"
    )


def test_admin_deletes_a_user_and_their_tokens_die(
    client: FlaskClient, admin: Tokens, member: Tokens, db_session: Session
) -> None:
    user_id = db_session.scalars(select(User.id).where(User.email == "member@example.com")).one()
    assert client.delete(f"/api/v1/admin/users/{user_id}", headers=admin.headers).status_code == 204
    assert_problem(client.get("/api/v1/auth/me", headers=member.headers), 401, "E_UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"role": "member"}), ("PATCH", {"is_active": False}), ("DELETE", None)],
)
def test_the_last_admin_is_protected(
    client: FlaskClient, admin: Tokens, db_session: Session, method: str, body: object
) -> None:
    admin_id = db_session.scalars(select(User.id)).one()
    response = client.open(
        f"/api/v1/admin/users/{admin_id}", method=method, headers=admin.headers, json=body
    )
    assert_problem(response, 403, "E_LAST_ADMIN_FORBIDDEN")
    assert client.get("/api/v1/auth/me", headers=admin.headers).status_code == 200
    self_delete = client.delete(
        "/api/v1/auth/me", headers=admin.headers, json={"password": PASSWORD}
    )
    assert_problem(self_delete, 403, "E_LAST_ADMIN_FORBIDDEN")


def test_the_last_admin_rule_holds_under_concurrent_requests(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    """Two admins demote each other at the same moment: exactly one may win."""
    app = make_app(database_url=fresh_database)
    client = app.test_client()
    with app.app_context():
        session = app.extensions["nexus.database"].sessionmaker()
        hashed = password_hasher().hash(PASSWORD)
        first = User(email="a@example.com", password_hash=hashed, role="admin")
        second = User(email="b@example.com", password_hash=hashed, role="admin")
        session.add_all([first, second])
        session.commit()
        ids = {"a": first.id, "b": second.id}
        session.close()
    tokens = {
        name: client.post(
            "/api/v1/auth/login", json={"email": f"{name}@example.com", "password": PASSWORD}
        ).get_json()["data"]["access_token"]
        for name in ("a", "b")
    }
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def demote(actor: str, target: str) -> None:
        own = app.test_client()
        barrier.wait()
        response = own.patch(
            f"/api/v1/admin/users/{ids[target]}",
            headers={"Authorization": f"Bearer {tokens[actor]}"},
            json={"role": "member"},
        )
        statuses[actor] = response.status_code

    threads = [
        threading.Thread(target=demote, args=("a", "b")),
        threading.Thread(target=demote, args=("b", "a")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses.values()) == [200, 403]
    with app.app_context():
        session = app.extensions["nexus.database"].sessionmaker()
        admins = session.scalars(select(User).where(User.role == "admin")).all()
        session.close()
    assert len(admins) == 1
