"""Pages of a list: ``?limit=&cursor=`` in, ``{"data": [...], "meta": ...}`` out, one cursor format.

Every list endpoint calls :func:`keyset_page` with its ``PageQuery`` (which
carries its filters), a name, its sort key (a ``Keyset``) and a function
that fetches rows after a key. It asks for one row more than it shows, to know whether a next
page exists. A cursor is the last shown row's key, signed with the app's
secret key (itsdangerous) together with the list's name and a digest of its
filters: a cursor that was edited, or issued by another list or for other
filters, is refused with 400 ``E_INVALID_REQUEST``, like a malformed one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from flask import Response, current_app
from itsdangerous import BadData, URLSafeSerializer

from nexus.api.envelope import PageQuery, page
from nexus.api.errors import ApiError, ErrorCode

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
_SALT = "nexus.pagination.cursor"


class SortKey(Protocol[T_contra]):
    """A list's sort key: ``infrastructure.keyset.Keyset`` is one."""

    @property
    def types(self) -> tuple[type, ...]: ...

    def key(self, row: T_contra) -> tuple[Any, ...]: ...


def keyset_page(
    query: PageQuery,
    *,
    name: str,
    keyset: SortKey[T],
    fetch: Callable[[tuple[Any, ...] | None, int], Sequence[T]],
    render: Callable[[T], Any],
) -> Response:
    """The page after ``query.cursor``: ``fetch(after_key, limit + 1)``, shown ``render``ed."""
    scope = _scope(name, query)
    after = read_cursor(query.cursor, scope, keyset.types) if query.cursor is not None else None
    rows = fetch(after, query.limit + 1)
    shown = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last = [_plain(value) for value in keyset.key(shown[-1])]
        next_cursor = _serializer().dumps({"s": scope, "k": last})
    return page([render(row) for row in shown], next_cursor=next_cursor, limit=query.limit)


def read_cursor(cursor: str, scope: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The key inside a cursor this list issued for these filters, or a 400 problem."""
    try:
        position = _serializer().loads(cursor)
        if not isinstance(position, dict) or position.get("s") != scope:
            raise ValueError("another list's cursor, or other filters'")
        values = position["k"]
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("not this list's key")
        return tuple(_typed(value, kind) for value, kind in zip(values, types, strict=True))
    except (BadData, KeyError, TypeError, ValueError):
        raise ApiError(
            ErrorCode.E_INVALID_REQUEST,
            "The cursor is not one this list issued for these filters; "
            "pass back meta.next_cursor unchanged, with the same filters.",
            errors=[{"field": "cursor", "message": "Invalid cursor."}],
        ) from None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _scope(name: str, query: PageQuery) -> str:
    filters = query.model_dump(mode="json", exclude={"cursor", "limit"})
    canonical = json.dumps([name, filters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | uuid.UUID):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    return value


def _typed(value: Any, kind: type) -> Any:
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value
