"""An app with extra test-only routes that exercise validation and error paths."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, abort, request
from flask.testing import FlaskClient
from pydantic import Field
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.orm import Session

from nexus.api.envelope import PageQuery, data, page
from nexus.api.errors import ErrorCode
from nexus.api.validation import RequestModel, validate
from nexus.app import create_app
from nexus.infrastructure.database import get_session
from tests.support import dispose


class ItemIn(RequestModel):
    name: str = Field(min_length=1, max_length=20)
    quantity: int = Field(ge=1)


class ItemQuery(PageQuery):
    tag: list[str] = Field(default_factory=list)


def require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for authentication: 401 unless a token is sent."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "Authorization" not in request.headers:
            abort(401)
        return view(*args, **kwargs)

    return wrapper


def build_test_blueprint() -> Blueprint:
    bp = Blueprint("test_routes", __name__)

    @bp.post("/items")
    @validate(body=ItemIn, field_codes={"name": ErrorCode.E_NAME_INVALID})
    def create_item(body: ItemIn) -> Response:
        return data(body, status=201)

    @bp.get("/items")
    @validate(query=ItemQuery)
    def list_items(query: ItemQuery) -> Response:
        return page([{"tags": query.tag}], next_cursor=None, limit=query.limit)

    @bp.post("/guarded")
    @require_token
    @validate(body=ItemIn)
    def guarded(body: ItemIn) -> Response:
        return data(body)

    @bp.get("/boom")
    def boom() -> Response:
        raise RuntimeError("connection to postgresql://app:hunter2@db failed")

    @bp.get("/db-touch")
    def db_touch() -> Response:
        return data({"one": get_session().execute(text("SELECT 1")).scalar_one()})

    @bp.get("/redis-down")
    def redis_down() -> Response:
        raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    @bp.get("/teapot")
    def teapot() -> Response:
        abort(418)

    return bp


@pytest.fixture(scope="session")
def api_app(app: Flask) -> Iterator[Flask]:
    """The session app plus the test routes under /api/v1/test."""
    test_app = create_app(app.extensions["nexus.settings"])
    test_app.register_blueprint(build_test_blueprint(), url_prefix="/api/v1/test")
    yield test_app
    dispose(test_app)


@pytest.fixture
def api(api_app: Flask, db_session: Session, redis: Redis) -> FlaskClient:
    return api_app.test_client()
