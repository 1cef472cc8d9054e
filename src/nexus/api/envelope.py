"""Success envelopes: ``{"data": ...}`` and the paginated list shape.

Owns the body of every successful API response — ``data(...)`` for one
resource, ``page(...)`` for a list with ``meta.next_cursor`` and
``meta.limit`` — and the pagination contract: ``?limit=`` (default 50, at most
200) and an opaque ``?cursor=`` that clients pass back unchanged (issued and
checked by ``nexus.api.pagination``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify
from pydantic import BaseModel, Field

from nexus.api.validation import RequestModel

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(RequestModel):
    """``?limit=&cursor=``: list endpoints subclass this to add their filters."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    # What pagination issues: itsdangerous' URL-safe base64 and dots. Saying
    # so lets clients (and fuzzers) know a cursor is never arbitrary text.
    cursor: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_.-]+$"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_jsonable(item) for item in value]
    return value


def data(payload: Any, status: int = 200) -> Response:
    """``{"data": payload}``; pydantic models are dumped in JSON mode."""
    response = jsonify({"data": _jsonable(payload)})
    response.status_code = status
    return response


def page(items: Sequence[Any], *, next_cursor: str | None, limit: int) -> Response:
    """``{"data": [...], "meta": {"next_cursor": ..., "limit": ...}}``."""
    return jsonify({"data": _jsonable(items), "meta": {"next_cursor": next_cursor, "limit": limit}})
