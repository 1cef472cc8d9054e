"""The error catalogue: what each ``code`` means, where every problem's ``type`` points.

``GET /api/v1/problems`` lists the codes (a paginated list, like every list
endpoint); ``GET /api/v1/problems/<code>`` describes one. Clients and docs can
be generated from it; nothing here is secret.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel

from nexus.api.contract import responds
from nexus.api.envelope import PageQuery, data
from nexus.api.errors import ApiError, ErrorCode, catalogue
from nexus.api.pagination import keyset_page
from nexus.api.validation import validate

bp = Blueprint("problems", __name__)


class _ByName:
    """The catalogue's sort key: the code's name."""

    types = (str,)

    def key(self, code: ErrorCode) -> tuple[str]:
        return (code.name,)


_BY_NAME = _ByName()


class ProblemType(BaseModel):
    """One error code: what it means, and the problem ``type`` URI that names it."""

    code: str
    status: int
    title: str
    description: str
    type: str


@bp.get("/problems")
@responds(200, ProblemType, envelope="page", outage=False)
@validate(query=PageQuery)
def list_problem_types(query: PageQuery) -> Response:
    """Every error code the API answers with."""
    codes = sorted(catalogue().values(), key=lambda code: code.name)

    def after(key: tuple[Any, ...] | None, limit: int) -> list[ErrorCode]:
        return [code for code in codes if key is None or code.name > key[0]][:limit]

    return keyset_page(query, name="problems", keyset=_BY_NAME, fetch=after, render=_describe)


@bp.get("/problems/<name>")
@responds(200, ProblemType, outage=False)
def get_problem_type(name: str) -> Response:
    """One error code: what it means."""
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
