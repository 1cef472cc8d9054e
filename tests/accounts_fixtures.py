"""Accounts fixtures for every test: users made through the real services, signed-in clients.

Loaded by the root conftest (`pytest_plugins`), because any domain's tests need
an admin or a member to call its endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from nexus.accounts.auth import password_hasher
from nexus.accounts.events import UserCreated
from nexus.accounts.models import User
from nexus.infrastructure import events

PASSWORD = "violet-tangerine-kettle-42"


@dataclass
class Tokens:
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def refresh_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.refresh}"}


@pytest.fixture
def make_user(app: Flask, db_session: Session) -> Callable[..., User]:
    """A committed (to the test's savepoint) user with ``PASSWORD`` unless told otherwise.

    Made as the services make one: ``UserCreated`` is published in the same
    transaction, so the user has what every domain gives a new user.
    """

    def factory(
        email: str = "member@example.com",
        *,
        role: str = "member",
        password: str = PASSWORD,
        is_active: bool = True,
    ) -> User:
        with app.app_context():
            password_hash = password_hasher().hash(password)
        user = User(email=email, password_hash=password_hash, role=role, is_active=is_active)
        db_session.add(user)
        db_session.flush()
        with app.app_context():
            events.publish(db_session, UserCreated(user_id=user.id, email=email, role=role))
        db_session.commit()
        db_session.refresh(user)
        return user

    return factory


@pytest.fixture
def login(client: FlaskClient) -> Callable[..., Tokens]:
    def do(email: str = "member@example.com", password: str = PASSWORD) -> Tokens:
        response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()["data"]
        return Tokens(body["access_token"], body["refresh_token"])

    return do


@pytest.fixture
def admin(make_user: Callable[..., User], login: Callable[..., Tokens]) -> Tokens:
    make_user("admin@example.com", role="admin")
    return login("admin@example.com")


@pytest.fixture
def member(make_user: Callable[..., User], login: Callable[..., Tokens]) -> Tokens:
    make_user("member@example.com")
    return login("member@example.com")
