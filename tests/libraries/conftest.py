"""Fixtures of the libraries tests: the other people in them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nexus.accounts.models import User
from tests.accounts_fixtures import Tokens


@pytest.fixture
def grace(make_user: Callable[..., User], login: Callable[..., Tokens]) -> Tokens:
    """A second member, for libraries shared between two people."""
    make_user("grace@example.com")
    return login("grace@example.com")


@pytest.fixture
def outsider(make_user: Callable[..., User], login: Callable[..., Tokens]) -> Tokens:
    """Someone in none of the member's libraries."""
    make_user("mallory@example.com")
    return login("mallory@example.com")
