"""`flask --app nexus create-admin EMAIL`: password from the environment or a prompt."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.accounts.models import User
from nexus.audit.models import AuditLog
from tests.accounts_fixtures import PASSWORD


def test_create_then_idempotent(
    app: Flask, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_ADMIN_PASSWORD", PASSWORD)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["create-admin", "root@example.com"])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("created root@example.com")
    second = runner.invoke(args=["create-admin", "ROOT@example.com"])
    assert second.exit_code == 0
    assert second.stdout.startswith("admin root@example.com")
    [user] = db_session.scalars(select(User)).all()
    assert user.role == "admin"


def test_promotes_an_existing_member_from_a_prompted_password(
    app: Flask, make_user: Callable[..., User], db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEXUS_ADMIN_PASSWORD", raising=False)
    user = make_user("member@example.com", is_active=False)
    result = app.test_cli_runner().invoke(
        args=["create-admin", "member@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    db_session.refresh(user)
    assert (user.role, user.is_active) == ("admin", True)
    audited = db_session.scalars(
        select(AuditLog.meta).where(AuditLog.action == "user.role_change")
    ).one()
    assert audited == {"from": "member", "to": "admin", "activated": True}


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "Invalid value for EMAIL"),
        ("ok@example.com", "short", "Use at least 12"),
    ],
)
def test_refusals(
    app: Flask,
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    email: str,
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("NEXUS_ADMIN_PASSWORD", password)
    result = app.test_cli_runner().invoke(args=["create-admin", email])
    assert result.exit_code != 0
    assert message in result.output
    assert db_session.scalars(select(User)).all() == []
