"""Per-request context: the request id, the security headers, metrics, the one access line.

Most of it is a WSGI middleware around Flask, so it costs what it does and
no more: it reads the request's environ and adds to the response's header
list rather than building werkzeug objects, and it runs once per request
whatever Flask does inside (a 404, a 500, an error handler's answer).

Every request gets a ``request_id`` — the client's ``X-Request-ID`` when it is
well formed, else a new UUID — opened as the request's scope
(:mod:`nexus.infrastructure.context`: problem documents, audit rows and jobs
quote it), bound into the log context (so every line the request logs
carries it) and echoed in the response, which also gets the security
headers (:class:`nexus.api.security.ResponseHeaders`). Each request runs in
a copy of the caller's context, so nothing it binds outlives it. When Flask
has answered, the request is counted (``nexus_http_requests_total``, the
latency histogram, in flight) and exactly one access line is logged:
method, route, path, status, duration_ms, the client's address and the
user id when authentication found one.

A view may accept larger bodies than ``NEXUS_MAX_BODY_BYTES`` (an upload
route): ``@body_limit(lambda: ...)`` names its own limit, applied to that
route only, before the body is read, however it is framed
(``nexus.api.application``: only Flask knows the route). The route's
template is read from Flask's request as the response starts.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from flask import Flask

from nexus.infrastructure import context, metrics
from nexus.infrastructure.logging import log_event
from nexus.infrastructure.tracing import TRACE_IDS_KEY

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from nexus.api.security import ResponseHeaders

REQUEST_ID_HEADER = "X-Request-ID"
# Printable, log-safe and bounded: anything else is replaced, never echoed.
_WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}").fullmatch
ACCESS_LOGGER = "nexus.access"
F = TypeVar("F", bound=Callable[..., Any])


# A version-4 UUID's fixed bits, as uuid.UUID(int=..., version=4) sets them.
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_SET = (0x8000 << 48) | (4 << 76)


def new_request_id() -> str:
    """A random version-4 UUID, as text.

    From the process's own generator (``random`` reseeds it in every forked
    worker), not the OS's: a request id correlates lines, it guards nothing,
    and ``uuid.uuid4()``'s system call took 4 µs of every request.
    """
    bits = "%032x" % ((random.getrandbits(128) & _CLEAR) | _SET)
    return f"{bits[:8]}-{bits[8:12]}-{bits[12:16]}-{bits[16:20]}-{bits[20:]}"


def body_limit(limit: Callable[[], int]) -> Callable[[F], F]:
    """Let the decorated view take bodies of up to ``limit()`` bytes (read per request)."""

    def decorator(view: F) -> F:
        view.body_limit = limit  # type: ignore[attr-defined]
        return view

    return decorator


class RequestContext:
    """The middleware: scope, request id, headers, metrics and the access line."""

    def __init__(self, app: WSGIApplication, headers: ResponseHeaders) -> None:
        self.app = app
        self.headers = headers
        # (route, method, status) -> the counter's and the histogram's
        # children: labels() takes a lock and builds a key each time.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return copy_context().run(self._handle, environ, start_response)

    def _handle(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        offered = environ.get("HTTP_X_REQUEST_ID")
        if offered and _WELL_FORMED_REQUEST_ID(offered):
            request_id: str = offered
        else:
            request_id = new_request_id()
        scope = context.open_scope(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        route: str | None = None
        apply_headers = self.headers.apply

        def respond(
            status_line: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
            /,
        ) -> Callable[[bytes], object]:
            nonlocal status, route
            status = int(status_line[:3])
            # Flask answers inside its request context: the request is still here.
            flask_request = environ.get("werkzeug.request")
            rule = flask_request.url_rule if flask_request is not None else None
            route = rule.rule if rule is not None else None
            headers.append((REQUEST_ID_HEADER, request_id))
            apply_headers(environ, headers)
            return start_response(status_line, headers, exc_info)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            body = self.app(environ, respond)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
        elapsed = time.perf_counter() - started
        method = environ.get("REQUEST_METHOD", "")
        self._count(route or "<unmatched>", metrics.method_label(method), status, elapsed)
        fields: dict[str, Any] = {
            "event": "http.request",
            "method": method,
            "route": route,
            # PEP 3333 hands the path over as latin-1; the client sent UTF-8.
            "path": environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"),
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            # The address the audit log and the rate limiter see too (ProxyFix).
            "client": environ.get("REMOTE_ADDR"),
        }
        if scope.user_id is not None:
            fields["user_id"] = str(scope.user_id)
        trace_ids = environ.get(TRACE_IDS_KEY)
        if trace_ids is not None:
            fields["trace_id"], fields["span_id"] = trace_ids
        log_event(ACCESS_LOGGER, fields)
        return body

    def _count(self, route: str, method: str, status: int, elapsed: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:
            children = self._children[(route, method, status)] = (
                metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
                metrics.HTTP_LATENCY.labels(route=route, method=method),
            )
        counter, histogram = children
        counter.inc()
        histogram.observe(elapsed)


def init_app(app: Flask, headers: ResponseHeaders) -> None:
    """Wrap ``app``'s WSGI callable in :class:`RequestContext`."""
    app.wsgi_app = RequestContext(app.wsgi_app, headers)  # type: ignore[method-assign]
