"""The error catalogue: what each ``code`` means, where every problem's ``type`` points.

``GET /api/v1/problems`` lists the codes (a paginated list, like every list
endpoint); ``GET /api/v1/problems/<code>`` describes one. Clients and docs can
be generated from it; nothing here is secret.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from nexus.api.envelope import PageQuery, data, decode_cursor, encode_cursor, page
from nexus.api.errors import ApiError, ErrorCode, catalogue
from nexus.api.validation import validate

bp = Blueprint("problems", __name__)


@bp.get("/problems")
@validate(query=PageQuery)
def list_problem_types(query: PageQuery) -> Response:
    codes = sorted(catalogue().values(), key=lambda code: code.name)
    if query.cursor is not None:
        after = str(decode_cursor(query.cursor).get("after", ""))
        codes = [code for code in codes if code.name > after]
    chosen = codes[: query.limit]
    more = len(codes) > query.limit
    next_cursor = encode_cursor({"after": chosen[-1].name}) if more else None
    return page([_describe(code) for code in chosen], next_cursor=next_cursor, limit=query.limit)


@bp.get("/problems/<name>")
def get_problem_type(name: str) -> Response:
    code = catalogue().get(name)
    if code is None:
        raise ApiError(ErrorCode.E_NOT_FOUND, f"There is no error code {name!r}.")
    return data(_describe(code))


def _describe(code: ErrorCode) -> dict[str, Any]:
    return {
        "code": code.name,
        "status": code.status,
        "title": code.title,
        "description": code.description,
        "type": code.type_uri,
    }
