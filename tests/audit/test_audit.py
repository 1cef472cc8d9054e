"""The audit log: append-only in the database, readable by admins, free of secrets."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from nexus.audit import services
from nexus.audit.services import AuditContext
from tests.accounts_fixtures import Tokens
from tests.api.test_errors import assert_problem


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_logs SET action = 'rewritten'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
    ],
)
def test_history_cannot_be_rewritten_even_with_raw_sql(fresh_database: str, statement: str) -> None:
    with psycopg.connect(_libpq(fresh_database), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO audit_logs (action, status) VALUES ('auth.login', 'success')"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            connection.execute(statement)
        assert connection.execute("SELECT action FROM audit_logs").fetchall() == [("auth.login",)]


def test_a_failure_survives_the_rollback_of_its_request(
    client: FlaskClient, db_session: Session
) -> None:
    client.post("/api/v1/auth/login", json={"email": "who@example.org", "password": "x" * 12})
    row = db_session.execute(text("SELECT action, status, meta, request_id FROM audit_logs")).one()
    assert (row.action, row.status, row.meta) == (
        "auth.login",
        "failure",
        {"email_domain": "example.org"},
    )
    assert row.request_id is not None


def test_meta_refuses_secret_looking_keys(db_session: Session) -> None:
    for key in ("password", "access_token", "password_hash", "api_secret"):
        with pytest.raises(ValueError, match="looks like a secret"):
            services.record(session=db_session, context=AuditContext(), action="x", meta={key: "v"})


def test_admins_read_and_filter_the_log(
    client: FlaskClient,
    admin: Tokens,
    login: Callable[..., Tokens],
    make_user: Callable[..., object],
) -> None:
    make_user("member@example.com")
    login("member@example.com")
    client.post(
        "/api/v1/auth/login", json={"email": "member@example.com", "password": "wrong-one-123"}
    )
    everything = client.get("/api/v1/admin/audit-logs", headers=admin.headers).get_json()
    assert [entry["action"] for entry in everything["data"]] == ["auth.login"] * 3
    assert everything["data"][0]["status"] == "failure"  # newest first
    entry = everything["data"][1]
    assert set(entry) >= {
        "id",
        "occurred_at",
        "actor_id",
        "actor_role",
        "action",
        "target_type",
        "target_id",
        "meta",
        "ip",
        "user_agent",
        "status",
        "request_id",
    }
    failures = client.get(
        "/api/v1/admin/audit-logs?status=failure", headers=admin.headers
    ).get_json()
    assert len(failures["data"]) == 1
    actor = entry["actor_id"]
    mine = client.get(
        f"/api/v1/admin/audit-logs?actor_id={actor}", headers=admin.headers
    ).get_json()
    assert {row["actor_id"] for row in mine["data"]} == {actor}
    first = client.get("/api/v1/admin/audit-logs?limit=2", headers=admin.headers).get_json()
    cursor = first["meta"]["next_cursor"]
    second = client.get(
        f"/api/v1/admin/audit-logs?limit=2&cursor={cursor}", headers=admin.headers
    ).get_json()
    ids = [row["id"] for row in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 3
    window = client.get(
        "/api/v1/admin/audit-logs?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z",
        headers=admin.headers,
    ).get_json()
    assert window["data"] == []


@pytest.mark.parametrize(
    "query",
    [
        "status=maybe",
        "actor_id=42",
        "since=yesterday",
        "cursor=eyJ4IjoxfQ",
        "cursor=not%20a%20cursor",  # not what pagination issues: the document's pattern
        # Only an RFC 3339 timestamp with its offset, as the document says;
        # pydantic alone would read these as times.
        "until=0.5",
        "since=2026-01-01",
        "since=2026-01-01T09:30:00",
    ],
)
def test_bad_audit_queries_are_400(client: FlaskClient, admin: Tokens, query: str) -> None:
    response = client.get(f"/api/v1/admin/audit-logs?{query}", headers=admin.headers)
    assert_problem(response, 400, "E_INVALID_REQUEST")


def test_a_user_agent_with_control_characters_is_stored_readable(db_session: Session) -> None:
    # PostgreSQL text cannot hold NUL: stored raw, the request would be a 500.
    context = AuditContext(user_agent="curl/8\x00\x1b[31mred\nnext")
    services.record(session=db_session, context=context, action="test.agent")
    db_session.flush()
    stored = db_session.execute(
        text("SELECT user_agent FROM audit_logs WHERE action = 'test.agent'")
    ).scalar_one()
    assert stored == "curl/8\ufffd\ufffd[31mred\ufffdnext"
