"""Errors: every error code, and the RFC 9457 problem document each error becomes.

Owns :class:`ErrorCode` (the stable ``code`` clients branch on, its HTTP status
and title), :class:`ApiError` (what services and routes raise), the handlers
that turn it, werkzeug's HTTP errors and anything unhandled into
``application/problem+json``. A traceback is logged, never sent; each
problem's ``type`` points at its entry in the catalogue (``api/problems.py``).
"""

from __future__ import annotations

import enum
from typing import Any, cast

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from nexus.config import current_settings
from nexus.infrastructure.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "/api/v1/problems/"

log = get_logger(__name__)


class ErrorCode(enum.Enum):
    """A stable error code: its HTTP status, title and meaning.

    Codes are part of the API contract: add new ones, never rename or reuse one.
    """

    E_INVALID_REQUEST = (
        400,
        "Invalid request",
        "The body or query string is malformed or fails validation.",
    )
    E_NAME_INVALID = (400, "Invalid name", "A name is empty, too long or has invalid characters.")
    E_UNAUTHENTICATED = (
        401,
        "Authentication required",
        "Credentials are missing, malformed, expired or revoked.",
    )
    E_FORBIDDEN = (403, "Forbidden", "The caller is authenticated but may not do this.")
    E_INTERNAL_ONLY = (403, "Internal endpoint", "This endpoint answers internal callers only.")
    E_DEFAULT_LIBRARY_FORBIDDEN = (
        403,
        "Default library is protected",
        "The default library cannot be renamed or deleted.",
    )
    E_LAST_ADMIN_FORBIDDEN = (
        403,
        "Last admin is protected",
        "The last active admin cannot be demoted, deactivated or deleted.",
    )
    E_NOT_FOUND = (404, "Not found", "No such resource, or it is not visible to the caller.")
    E_LIBRARY_NOT_FOUND = (
        404,
        "Library not found",
        "No such library, or the caller is not a member.",
    )
    E_MEDIA_NOT_FOUND = (
        404,
        "Media not found",
        "No such media, or it is not readable by the caller.",
    )
    E_METHOD_NOT_ALLOWED = (
        405,
        "Method not allowed",
        "The resource exists but does not accept this method; see Allow.",
    )
    E_CONFLICT = (
        409,
        "Conflict",
        "The request conflicts with the current state, e.g. a duplicate.",
    )
    E_PAYLOAD_TOO_LARGE = (413, "Payload too large", "The request body exceeds the size limit.")
    E_UNSUPPORTED_MEDIA_TYPE = (
        415,
        "Unsupported media type",
        "The body must be JSON (Content-Type: application/json).",
    )
    E_RATE_LIMITED = (
        429,
        "Too many requests",
        "The caller exceeded a rate limit; retry after Retry-After seconds.",
    )
    E_INTERNAL = (
        500,
        "Internal error",
        "An unexpected error; quote the request_id when reporting it.",
    )
    E_AUTH_UNAVAILABLE = (
        503,
        "Authentication unavailable",
        "Credentials cannot be checked right now; retry later.",
    )

    def __init__(self, status: int, title: str, description: str) -> None:
        self.status = status
        self.title = title
        self.description = description

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.name


class ApiError(Exception):
    """An error a client can act on; raised anywhere, rendered as a problem.

    ``errors`` lists field problems as ``{"field", "message"}``.
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or code.title)
        self.code = code
        self.detail = detail or code.description
        self.errors = errors
        self.headers = headers or {}


# werkzeug's HTTP errors (routing, body limits) mapped to our codes.
_HTTP_STATUS_CODES = {
    400: ErrorCode.E_INVALID_REQUEST,
    401: ErrorCode.E_UNAUTHENTICATED,
    403: ErrorCode.E_FORBIDDEN,
    404: ErrorCode.E_NOT_FOUND,
    405: ErrorCode.E_METHOD_NOT_ALLOWED,
    409: ErrorCode.E_CONFLICT,
    413: ErrorCode.E_PAYLOAD_TOO_LARGE,
    415: ErrorCode.E_UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.E_RATE_LIMITED,
}


def problem(
    code: ErrorCode,
    detail: str,
    *,
    status: int | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem response for ``code``."""
    body: dict[str, Any] = {
        "type": code.type_uri,
        "title": code.title,
        "status": status or code.status,
        "detail": detail,
        "instance": request.path,
        "code": code.name,
        "request_id": g.get("request_id"),
    }
    if errors is not None:
        body["errors"] = errors
    response = cast(Response, current_app.json.response(body))
    response.status_code = body["status"]
    response.mimetype = PROBLEM_JSON
    response.headers.update(headers or {})
    return response


def _handle_api_error(exc: ApiError) -> Response:
    return problem(exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _handle_unexpected(exc)
    code = _HTTP_STATUS_CODES.get(status, ErrorCode.E_INVALID_REQUEST)
    detail = exc.description or code.description
    if isinstance(exc, RequestEntityTooLarge):
        detail = f"The request body exceeds the limit of {current_settings().max_body_bytes} bytes."
    # Keep the headers werkzeug set for a reason (Allow on 405, Retry-After).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem(code, detail, status=status, headers=headers)


def _handle_unexpected(exc: BaseException) -> Response:
    log.error("http.unhandled_exception", exc_info=exc)
    return problem(ErrorCode.E_INTERNAL, ErrorCode.E_INTERNAL.description)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
