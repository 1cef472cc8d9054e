"""Success envelopes: ``{"data": ...}`` and the paginated list shape.

Owns the body of every successful API response — ``data(...)`` for one
resource, ``page(...)`` for a list with ``meta.next_cursor`` and
``meta.limit`` — and the pagination contract: ``?limit=`` (default 50, at most
200) and an opaque ``?cursor=`` that clients pass back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import Response, jsonify
from pydantic import BaseModel, Field

from nexus.api.errors import ApiError, ErrorCode
from nexus.api.validation import RequestModel

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(RequestModel):
    """``?limit=&cursor=``: list endpoints subclass this to add their filters."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=512)


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


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for ``position`` (e.g. the sort key of the last item)."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The position inside a cursor from :func:`encode_cursor`, or a 400 problem."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError):
        position = None
    if not isinstance(position, dict):
        raise ApiError(
            ErrorCode.E_INVALID_REQUEST,
            "The cursor is not one this API issued; pass back meta.next_cursor unchanged.",
            errors=[{"field": "cursor", "message": "Invalid cursor."}],
        )
    return position


def encode_created_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    """A cursor after the item with this ``(created_at, id)``: lists sorted newest first."""
    return encode_cursor({"c": created_at.isoformat(), "i": str(item_id)})


def decode_created_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The ``(created_at, id)`` in a cursor from :func:`encode_created_cursor`, or a 400."""
    position = decode_cursor(cursor)
    try:
        return datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(
            ErrorCode.E_INVALID_REQUEST,
            "The cursor is not one this API issued.",
            errors=[{"field": "cursor", "message": "Invalid cursor."}],
        ) from None
