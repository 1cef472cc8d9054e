"""Fixtures for tests that run real worker processes on a database of their own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from redis import Redis


@pytest.fixture
def durable(make_app: Callable[..., Flask], fresh_database: str, redis: Redis) -> Flask:
    """An app on the database the worker processes use (its commits are real)."""
    return make_app(database_url=fresh_database)
