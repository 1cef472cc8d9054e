"""Per-request context: the request id, the body-size check, the one access line.

A view may accept larger bodies than ``NEXUS_MAX_BODY_BYTES`` (an upload
route): ``@body_limit(lambda: ...)`` names its own limit, applied to that
route only, before the body is read, however it is framed.

Every request gets a ``request_id`` — the client's ``X-Request-ID`` when it is
well formed, else a new UUID — bound into the log context (so every line the
request logs carries it), stored on ``g`` (problem documents quote it) and
echoed in the response. After the response is built, exactly one access line
is logged: method, route, path, status, duration_ms, the client's address
and the user id when one is known (``g.user_id``, set by authentication).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from nexus.config import current_settings
from nexus.infrastructure import context, metrics
from nexus.infrastructure.logging import get_logger

REQUEST_ID_HEADER = "X-Request-ID"
# Printable, log-safe and bounded: anything else is replaced, never echoed.
_WELL_FORMED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("nexus.access")
F = TypeVar("F", bound=Callable[..., Any])


def body_limit(limit: Callable[[], int]) -> Callable[[F], F]:
    """Let the decorated view take bodies of up to ``limit()`` bytes (read per request)."""

    def decorator(view: F) -> F:
        view.body_limit = limit  # type: ignore[attr-defined]
        return view

    return decorator


def _limit_for(endpoint: str | None) -> int:
    view = current_app.view_functions.get(endpoint or "")
    own: Callable[[], int] | None = getattr(view, "body_limit", None)
    return own() if own is not None else current_settings().max_body_bytes


def _begin_request() -> None:
    structlog.contextvars.clear_contextvars()
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = offered if _WELL_FORMED_REQUEST_ID.match(offered) else str(uuid.uuid4())
    context.bind(request_id=request_id)
    g.request_started = time.perf_counter()
    metrics.HTTP_IN_FLIGHT.inc()
    g.in_flight = True
    structlog.contextvars.bind_contextvars(request_id=request_id)
    # Refuse an oversized body before any view reads it, whether or not the
    # view would have; werkzeug enforces the same limit on chunked bodies.
    limit = _limit_for(request.endpoint)
    request.max_content_length = limit
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge


def _finish_request(response: Response) -> Response:
    request_id = context.request_id()
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    elapsed = time.perf_counter() - started if started else None
    duration_ms = round(elapsed * 1000, 2) if elapsed is not None else None
    rule = request.url_rule
    # The route's template, never the raw path: label values stay bounded.
    route = rule.rule if rule is not None else "<unmatched>"
    method = metrics.method_label(request.method)
    metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
    if elapsed is not None:
        metrics.HTTP_LATENCY.labels(route=route, method=method).observe(elapsed)
    fields = {
        "method": request.method,
        "route": rule.rule if rule is not None else None,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": duration_ms,
        # The address the audit log and the rate limiter see too (ProxyFix).
        "client": request.remote_addr,
    }
    user_id = context.user_id()
    if user_id is not None:
        fields["user_id"] = str(user_id)
    log.info("http.request", **fields)
    return response


def _end_request(_exc: BaseException | None) -> None:
    if g.pop("in_flight", False):
        metrics.HTTP_IN_FLIGHT.dec()
    structlog.contextvars.clear_contextvars()


def init_app(app: Flask) -> None:
    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
