"""Errors: every error code, and the RFC 9457 problem document each error becomes.

Owns :class:`ErrorCode` (the stable ``code`` clients branch on, its HTTP status
and title) and the codes every app has, :class:`ApiError` (what routes raise),
the one mapping from services' domain errors (``nexus.errors``) to codes,
and the handlers that turn those, werkzeug's HTTP errors and anything
unhandled into ``application/problem+json``. A traceback is logged, never sent; each
problem's ``type`` points at its entry in the catalogue (``api/problems.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from nexus.config import current_settings
from nexus.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from nexus.infrastructure import context, metrics
from nexus.infrastructure.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "/api/v1/problems/"

log = get_logger(__name__)


@dataclass(frozen=True)
class ErrorCode:
    """A stable error code: its HTTP status, title and meaning.

    Codes are part of the API contract: add new ones, never rename or reuse
    one. The codes every app has are below (``ErrorCode.E_NOT_FOUND``); a
    domain declares its own in its ``errors.py`` and lists them in its
    ``Domain``, and the app's catalogue holds both.
    """

    name: str
    status: int
    title: str
    description: str

    E_INVALID_REQUEST: ClassVar[ErrorCode]
    E_NAME_INVALID: ClassVar[ErrorCode]
    E_UNAUTHENTICATED: ClassVar[ErrorCode]
    E_FORBIDDEN: ClassVar[ErrorCode]
    E_INTERNAL_ONLY: ClassVar[ErrorCode]
    E_NOT_FOUND: ClassVar[ErrorCode]
    E_METHOD_NOT_ALLOWED: ClassVar[ErrorCode]
    E_CONFLICT: ClassVar[ErrorCode]
    E_PAYLOAD_TOO_LARGE: ClassVar[ErrorCode]
    E_UNSUPPORTED_MEDIA_TYPE: ClassVar[ErrorCode]
    E_RATE_LIMITED: ClassVar[ErrorCode]
    E_INTERNAL: ClassVar[ErrorCode]
    E_UNAVAILABLE: ClassVar[ErrorCode]

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.name


ErrorCode.E_INVALID_REQUEST = ErrorCode(
    "E_INVALID_REQUEST",
    400,
    "Invalid request",
    "The body or query string is malformed or fails validation.",
)
ErrorCode.E_NAME_INVALID = ErrorCode(
    "E_NAME_INVALID",
    400,
    "Invalid name",
    "A name is empty, too long or has invalid characters.",
)
ErrorCode.E_UNAUTHENTICATED = ErrorCode(
    "E_UNAUTHENTICATED",
    401,
    "Authentication required",
    "Credentials are missing, malformed, expired or revoked.",
)
ErrorCode.E_FORBIDDEN = ErrorCode(
    "E_FORBIDDEN",
    403,
    "Forbidden",
    "The caller is authenticated but may not do this.",
)
ErrorCode.E_INTERNAL_ONLY = ErrorCode(
    "E_INTERNAL_ONLY",
    403,
    "Internal endpoint",
    "This endpoint answers internal callers only.",
)
ErrorCode.E_NOT_FOUND = ErrorCode(
    "E_NOT_FOUND",
    404,
    "Not found",
    "No such resource, or it is not visible to the caller.",
)
ErrorCode.E_METHOD_NOT_ALLOWED = ErrorCode(
    "E_METHOD_NOT_ALLOWED",
    405,
    "Method not allowed",
    "The resource exists but does not accept this method; see Allow.",
)
ErrorCode.E_CONFLICT = ErrorCode(
    "E_CONFLICT",
    409,
    "Conflict",
    "The request conflicts with the current state, e.g. a duplicate.",
)
ErrorCode.E_PAYLOAD_TOO_LARGE = ErrorCode(
    "E_PAYLOAD_TOO_LARGE",
    413,
    "Payload too large",
    "The request body exceeds the size limit.",
)
ErrorCode.E_UNSUPPORTED_MEDIA_TYPE = ErrorCode(
    "E_UNSUPPORTED_MEDIA_TYPE",
    415,
    "Unsupported media type",
    "The body must be JSON (Content-Type: application/json).",
)
ErrorCode.E_RATE_LIMITED = ErrorCode(
    "E_RATE_LIMITED",
    429,
    "Too many requests",
    "The caller exceeded a rate limit; retry after Retry-After seconds.",
)
ErrorCode.E_INTERNAL = ErrorCode(
    "E_INTERNAL",
    500,
    "Internal error",
    "An unexpected error; quote the request_id when reporting it.",
)
ErrorCode.E_UNAVAILABLE = ErrorCode(
    "E_UNAVAILABLE",
    503,
    "Service unavailable",
    "A dependency cannot answer right now; retry later.",
)

# Every app's codes, whatever its domains.
CORE_CODES: tuple[ErrorCode, ...] = (
    ErrorCode.E_INVALID_REQUEST,
    ErrorCode.E_NAME_INVALID,
    ErrorCode.E_UNAUTHENTICATED,
    ErrorCode.E_FORBIDDEN,
    ErrorCode.E_INTERNAL_ONLY,
    ErrorCode.E_NOT_FOUND,
    ErrorCode.E_METHOD_NOT_ALLOWED,
    ErrorCode.E_CONFLICT,
    ErrorCode.E_PAYLOAD_TOO_LARGE,
    ErrorCode.E_UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.E_RATE_LIMITED,
    ErrorCode.E_INTERNAL,
    ErrorCode.E_UNAVAILABLE,
)


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
        "request_id": context.request_id(),
    }
    if errors is not None:
        body["errors"] = errors
    metrics.PROBLEMS.labels(code=code.name).inc()
    response = cast(Response, current_app.json.response(body))
    response.status_code = body["status"]
    response.mimetype = PROBLEM_JSON
    response.headers.update(headers or {})
    return response


# Services' errors (nexus.errors) by class; a domain adds its own classes in
# its Domain, and the most specific class wins.
CORE_ERROR_CODES: dict[type[DomainError], ErrorCode] = {
    InvalidInput: ErrorCode.E_INVALID_REQUEST,
    Unauthenticated: ErrorCode.E_UNAUTHENTICATED,
    Forbidden: ErrorCode.E_FORBIDDEN,
    NotFound: ErrorCode.E_NOT_FOUND,
    Conflict: ErrorCode.E_CONFLICT,
    Unavailable: ErrorCode.E_UNAVAILABLE,
}
# A dependency down or too slow: the connection failed or broke, the pool is
# exhausted, a statement hit its timeout, Redis did not answer.
OUTAGES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
CODES_KEY = "nexus.error_codes"
ERROR_MAP_KEY = "nexus.error_map"


def init_app(
    app: Flask, codes: Iterable[ErrorCode], error_codes: Mapping[type[DomainError], ErrorCode]
) -> None:
    """The app's catalogue of codes and its domain-error mapping, core ones included."""
    catalogue: dict[str, ErrorCode] = {}
    for code in (*CORE_CODES, *codes):
        if catalogue.setdefault(code.name, code) is not code:
            raise ValueError(f"error code {code.name} is declared twice")
    app.extensions[CODES_KEY] = catalogue
    app.extensions[ERROR_MAP_KEY] = {**CORE_ERROR_CODES, **error_codes}
    register_error_handlers(app)


def catalogue() -> dict[str, ErrorCode]:
    """Every code the current app can answer with, by name."""
    codes: dict[str, ErrorCode] = current_app.extensions[CODES_KEY]
    return codes


def code_for(exc: DomainError) -> ErrorCode:
    """The code a domain error maps to: its own class's, else its nearest base's."""
    mapping: dict[type[DomainError], ErrorCode] = current_app.extensions[ERROR_MAP_KEY]
    for cls in type(exc).__mro__:
        code = mapping.get(cls)
        if code is not None:
            return code
    return ErrorCode.E_INTERNAL  # a bare DomainError: a programming error, not the client's


def _handle_domain_error(exc: DomainError) -> Response:
    code = code_for(exc)
    if code is ErrorCode.E_INTERNAL:  # a domain error nothing maps: a bug, logged as one
        return _handle_unexpected(exc)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if code.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem(code, exc.detail, errors=exc.errors, headers=headers)


def _handle_api_error(exc: ApiError) -> Response:
    return problem(exc.code, exc.detail, errors=exc.errors, headers=exc.headers)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _handle_unexpected(exc)
    code = _HTTP_STATUS_CODES.get(status, ErrorCode.E_INVALID_REQUEST)
    detail = exc.description or code.description
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.max_content_length if request else current_settings().max_body_bytes
        detail = f"The request body exceeds the limit of {limit} bytes."
    # Keep the headers werkzeug set for a reason (Allow on 405, Retry-After).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem(code, detail, status=status, headers=headers)


# How long a client should wait before retrying after an outage.
OUTAGE_RETRY_AFTER_SECONDS = 5


def _handle_outage(exc: Exception) -> Response:
    """PostgreSQL or Redis cannot be reached (or timed out): 503, an outage, not a bug."""
    log.warning("http.dependency_unavailable", error=f"{type(exc).__name__}: {exc}"[:500])
    return problem(
        ErrorCode.E_UNAVAILABLE,
        "A service this request needs is unavailable; retry in a few seconds.",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
    )


def _handle_unexpected(exc: BaseException) -> Response:
    log.error("http.unhandled_exception", exc_info=exc)
    return problem(ErrorCode.E_INTERNAL, ErrorCode.E_INTERNAL.description)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(DomainError, _handle_domain_error)
    for outage in OUTAGES:
        app.register_error_handler(outage, _handle_outage)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
