"""Rate limits: Flask-Limiter counting in Redis, per client, answered with 429 problems.

Owns the limiter of an app (one per app, made by :func:`init_app`), its keys
and the ``RateLimit-*`` headers. Every ``/api`` request counts against the
API limit (``NEXUS_RATE_LIMIT_API``) of its client — the user of a valid
access token, else the address (``request.remote_addr``, which
``NEXUS_TRUSTED_PROXIES`` makes the forwarded one) — whatever it asks and
whether or not it is well formed. A route adds a limit of its own with
``@rate_limit("login", per="address")``, read from
``NEXUS_RATE_LIMIT_LOGIN``; the route's contract then lists 429.

Counting is Redis' (the limits library's sliding-window counter, one Lua
script per limit, atomic across processes and hosts). Over a limit: 429
``E_RATE_LIMITED`` with ``Retry-After``; every limited answer carries
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(seconds), as the IETF's RateLimit header fields draft has them. If Redis
cannot be reached, limiting fails open: the request is served and a
warning logged. ``NEXUS_RATE_LIMITS_ENABLED=false`` turns every limit off.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import jwt as pyjwt
from flask import Flask, Response, current_app, request
from flask_limiter import ExemptionScope, Limiter, RequestLimit
from limits import parse_many
from redis import Redis

from nexus.api.contract import declare
from nexus.api.errors import ErrorCode
from nexus.config import Settings
from nexus.infrastructure import metrics
from nexus.infrastructure.logging import get_logger

EXTENSION_KEY = "nexus.limiter"
Per = Literal["address", "user"]
F = TypeVar("F", bound=Callable[..., Any])
log = get_logger(__name__)


def rate_limit(name: str, *, per: Per) -> Callable[[F], F]:
    """Give the view the limit ``NEXUS_RATE_LIMIT_<NAME>``, counted per address or per user."""

    def decorator(view: F) -> F:
        view.rate_limits = (*getattr(view, "rate_limits", ()), (name, per))  # type: ignore[attr-defined]
        declare(view, codes=[ErrorCode.E_RATE_LIMITED])
        return view

    return decorator


def silent(view: F) -> F:
    """Exempt the view from the API limit's 429: it limits itself with :func:`allow`.

    For a route whose answer must not tell anything, such as "is there an
    account with this address" (a reset request always answers 202).
    """
    view.rate_limit_silent = True  # type: ignore[attr-defined]
    return view


def allow(name: str, key: str) -> bool:
    """Count a hit of ``NEXUS_RATE_LIMIT_<NAME>`` for ``key``: whether it is within the limit.

    Limits off, or Redis unreachable: allowed (failing open, as every limit).
    """
    limiter: Limiter = current_app.extensions[EXTENSION_KEY]
    if not limiter.enabled:
        return True
    settings: Settings = current_app.extensions["nexus.settings"]
    try:
        return all(
            limiter.limiter.hit(item, "nexus:silent", name, key)
            for item in parse_many(_limit_of(settings, name))
        )
    except Exception as exc:  # Redis unreachable: the storage's own errors
        metrics.RATE_LIMIT_FAIL_OPEN.inc()
        log.warning("ratelimit.storage_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
        return True


def client_address() -> str:
    return request.remote_addr or "unknown"


def _user_from_token() -> str | None:
    """The subject of a validly signed, unexpired access token; no revocation check.

    Only keys the counter: a revoked token still fails authentication, and
    a forged one is not taken for its subject.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    settings: Settings = current_app.extensions["nexus.settings"]
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    try:
        claims = pyjwt.decode(
            token.strip(), secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except pyjwt.PyJWTError:
        return None
    if claims.get("type") != "access":
        return None
    return str(claims["sub"])


def client_key() -> str:
    """The signed-in user, else the address: whose counter a request counts against."""
    user = _user_from_token()
    return f"user:{user}" if user else f"address:{client_address()}"


def address_key() -> str:
    return f"address:{client_address()}"


_KEYS: dict[Per, Callable[[], str]] = {"address": address_key, "user": client_key}


def _limit_of(settings: Settings, name: str) -> str:
    value: str = getattr(settings, f"rate_limit_{name}")
    return value


class _FailOpen(logging.Filter):
    """Flask-Limiter logs a swallowed storage error with its traceback, at every request.

    One warning line says it instead: the request was served unlimited.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "Swallowing error" in record.getMessage():
            metrics.RATE_LIMIT_FAIL_OPEN.inc()
            exc = record.exc_info[1] if record.exc_info else None
            log.warning("ratelimit.storage_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        return True


def init_app(app: Flask, settings: Settings, redis: Redis) -> None:
    """Give ``app`` its limiter, and wrap every view that names a limit of its own.

    Call after every blueprint is registered: the views are wrapped here.
    """
    limiter = Limiter(
        key_func=client_key,
        application_limits=[settings.rate_limit_api],
        strategy="sliding-window-counter",
        storage_uri=settings.redis_url,
        # The app's pool: its timeouts, its connections.
        storage_options={"connection_pool": redis.connection_pool},  # type: ignore[dict-item]
        key_prefix="nexus:ratelimit",
        headers_enabled=False,  # ours below: RateLimit-Reset in seconds, not a timestamp
        swallow_errors=True,
        enabled=settings.rate_limits_enabled,
    )
    app.extensions[EXTENSION_KEY] = limiter
    if not settings.rate_limits_enabled:
        # No hooks at all: a disabled limiter's three hooks still ran on
        # every request, a tenth of the cost of a cheap one.
        return
    # Health checks, the document and the pages are not the API; a CORS
    # preflight is the browser's, not the client's.
    limiter.request_filter(
        lambda: not request.path.startswith("/api/") or request.method == "OPTIONS"
    )
    limiter.init_app(app)
    flask_limiter_log = logging.getLogger("flask-limiter")
    if not any(isinstance(f, _FailOpen) for f in flask_limiter_log.filters):  # once per process
        flask_limiter_log.addFilter(_FailOpen())
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "rate_limit_silent", False):
            limiter.exempt(view, flags=ExemptionScope.APPLICATION)
        wrapped: Callable[..., Any] = view
        for name, per in getattr(view, "rate_limits", ()):
            limit = limiter.limit(_limit_of(settings, name), key_func=_KEYS[per], scope=name)
            wrapped = limit(wrapped)
        app.view_functions[endpoint] = wrapped
    app.after_request(_rate_limit_headers)


def _rate_limit_headers(response: Response) -> Response:
    limiter: Limiter = current_app.extensions[EXTENSION_KEY]
    try:
        current: RequestLimit | None = limiter.current_limit
        if current is None:
            return response
        # reset_at is rounded up to the next second: never past the window.
        window = current.limit.get_expiry()
        reset_in = min(window, max(0, math.ceil(current.reset_at - time.time())))
        response.headers["RateLimit-Limit"] = str(current.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, current.remaining))
        response.headers["RateLimit-Reset"] = str(reset_in)
        if response.status_code == 429:
            response.headers["Retry-After"] = str(max(1, reset_in))
            rule = request.url_rule
            metrics.RATE_LIMITED.labels(route=rule.rule if rule else "<unmatched>").inc()
    except Exception as exc:  # Redis went away between the check and now: no headers
        log.warning("ratelimit.headers_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
    return response
