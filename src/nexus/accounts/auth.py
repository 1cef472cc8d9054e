"""Authentication for routes: the JWT setup, ``require_auth``, ``require_role``.

Owns flask-jwt-extended's configuration (HS256 only, so ``alg: none`` and
other algorithms are refused; tokens in the Authorization header only) and
its callbacks, every one of which answers 401 E_UNAUTHENTICATED as a problem
document — missing, malformed, badly signed, expired, revoked, the wrong
type, or a deleted or deactivated user alike. A request's user comes from
the token family's state (``tokens.FamilyCache``), so a revocation, a
deactivation or a role change applies to the next request.

Decorators go outermost on a view, ``@validate`` innermost, so checks run in
the order 401 → 403 → 400. Other domains import these to protect their routes.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import jwt as pyjwt
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import JWTManager, current_user, get_jwt, verify_jwt_in_request

from nexus.accounts.errors import E_AUTH_UNAVAILABLE
from nexus.accounts.lockout import Lockout
from nexus.accounts.passwords import PasswordHasher
from nexus.accounts.tokens import CACHE_TIMEOUT_SECONDS, FamilyCache, FamilyState
from nexus.api.contract import declare
from nexus.api.errors import ApiError, ErrorCode, problem
from nexus.audit import services as audit_services
from nexus.audit.services import AuditContext
from nexus.config import Settings
from nexus.infrastructure import context, metrics
from nexus.infrastructure.database import get_database, get_session
from nexus.infrastructure.redis import create_redis

P = ParamSpec("P")
R = TypeVar("R")
HASHER_KEY = "nexus.password_hasher"
# What a protected route may answer before its own code runs: no valid token,
# or nothing (neither Redis nor PostgreSQL) to check its revocation against.
AUTH_CODES = (ErrorCode.E_UNAUTHENTICATED, E_AUTH_UNAVAILABLE)
CACHE_KEY = "nexus.family_cache"
LOCKOUT_KEY = "nexus.login_lockout"


@dataclass(frozen=True)
class CurrentUser:
    """The authenticated caller of this request."""

    id: uuid.UUID
    role: str
    family_id: uuid.UUID


def _unauthenticated(detail: str = "Sign in to continue.") -> Response:
    return problem(ErrorCode.E_UNAUTHENTICATED, detail, headers={"WWW-Authenticate": "Bearer"})


def init_app(app: Flask, settings: Settings) -> None:
    """Configure JWTs and the password hasher for ``app``."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    app.config.update(
        JWT_SECRET_KEY=secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.refresh_token_days),
        JWT_ERROR_MESSAGE_KEY="detail",
    )
    jwt = JWTManager(app)
    app.extensions[HASHER_KEY] = PasswordHasher(settings)
    # Its own client: a cache must give up on a hung Redis in a fraction of
    # a second, where the app's client waits NEXUS_REDIS_SOCKET_TIMEOUT.
    cache_redis = create_redis(
        settings, client_name="nexus-auth-cache", timeout=CACHE_TIMEOUT_SECONDS
    )
    app.extensions[CACHE_KEY] = FamilyCache(cache_redis, settings.auth_cache_seconds)
    # The same quick-to-give-up client: a lock check must not hang a login.
    app.extensions[LOCKOUT_KEY] = Lockout.from_settings(cache_redis, settings)

    @jwt.decode_key_loader
    def _key(_header: dict[str, Any], unverified: dict[str, Any]) -> str:
        # flask-jwt-extended takes a token without "type" for an access token
        # and one without "exp" for one that never expires; ours carry both.
        for claim in ("exp", "type"):
            if claim not in unverified:
                raise pyjwt.MissingRequiredClaimError(claim)
        return secret

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict[str, Any], claims: dict[str, Any]) -> bool:
        state = _family_state(claims)
        g.auth_state = state
        return state is None or not state.usable

    @jwt.user_lookup_loader
    def _lookup(_header: dict[str, Any], claims: dict[str, Any]) -> CurrentUser | None:
        state: FamilyState | None = g.get("auth_state")
        if state is None:
            return None
        return CurrentUser(uuid.UUID(state.user_id), state.role, uuid.UUID(claims["fam"]))

    # Every failure, one answer: which check failed is not the client's
    # business (the operator's metric says it).
    jwt.unauthorized_loader(lambda _reason: _refused("missing"))
    jwt.invalid_token_loader(lambda _reason: _refused("invalid", "The token is not valid."))
    jwt.expired_token_loader(lambda _h, _c: _refused("expired", "The token has expired."))
    jwt.revoked_token_loader(lambda _h, _c: _refused("revoked", "The token has been revoked."))
    jwt.user_lookup_error_loader(lambda _h, _c: _refused("revoked", "The token has been revoked."))
    jwt.needs_fresh_token_loader(lambda _h, _c: _refused("invalid"))
    jwt.token_verification_failed_loader(lambda _h, _c: _refused("invalid"))


def _refused(reason: str, detail: str | None = None) -> Response:
    metrics.TOKEN_REFUSALS.labels(reason=reason).inc()
    return _unauthenticated(detail) if detail else _unauthenticated()


def _family_state(claims: dict[str, Any]) -> FamilyState | None:
    try:
        family_id = str(uuid.UUID(str(claims["fam"])))
        user_id = str(uuid.UUID(str(claims["sub"])))
    except (KeyError, ValueError):
        return None
    return family_cache().state(session=get_session(), family_id=family_id, user_id=user_id)


def password_hasher() -> PasswordHasher:
    hasher: PasswordHasher = current_app.extensions[HASHER_KEY]
    return hasher


def lockout() -> Lockout:
    found: Lockout = current_app.extensions[LOCKOUT_KEY]
    return found


def family_cache() -> FamilyCache:
    cache: FamilyCache = current_app.extensions[CACHE_KEY]
    return cache


def _authenticate(*, refresh: bool) -> CurrentUser:
    verify_jwt_in_request(refresh=refresh)
    user = current()
    context.bind(user_id=user.id)  # for the access line, and jobs it enqueues
    return user


def require_auth(view: Callable[P, R]) -> Callable[P, R]:
    """401 unless the request carries a valid, unrevoked access token."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _authenticate(refresh=False)
        return view(*args, **kwargs)

    declare(wrapper, secured=True, codes=AUTH_CODES)
    return wrapper


def require_refresh(view: Callable[P, R]) -> Callable[P, R]:
    """401 unless the request carries a valid, unrevoked refresh token."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _authenticate(refresh=True)
        return view(*args, **kwargs)

    declare(wrapper, secured=True, codes=AUTH_CODES)
    return wrapper


def require_role(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """401 without a valid token, 403 E_FORBIDDEN when the caller's role is not in ``roles``."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            user = _authenticate(refresh=False)
            if user.role not in roles:
                _record_refusal(
                    "authz.forbidden",
                    meta={"method": request.method, "endpoint": request.endpoint or "-"},
                )
                raise ApiError(ErrorCode.E_FORBIDDEN, "Your role may not do this.")
            return view(*args, **kwargs)

        declare(wrapper, secured=True, codes=(*AUTH_CODES, ErrorCode.E_FORBIDDEN))
        return wrapper

    return decorator


def _record_refusal(
    action: str,
    *,
    target_type: str | None = None,
    target_id: object | None = None,
    meta: dict[str, Any],
) -> None:
    # The refused request's own work is abandoned first: its transaction must
    # not hold (or, on one shared connection, swallow) the refusal's record.
    get_session().rollback()
    audit_services.record_failure(
        sessions=get_database().sessionmaker,
        context=audit_context(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        meta=meta,
    )


@contextmanager
def audit_refusals(
    action: str, *, target_type: str | None = None, target_id: object | None = None
) -> Iterator[None]:
    """Record a 403 raised inside the block as a failed ``action``, then let it propagate.

    The refusal's own transaction rolls back; the record of it must not.
    """
    try:
        yield
    except ApiError as exc:
        if exc.code.status == 403:
            _record_refusal(
                action, target_type=target_type, target_id=target_id, meta={"code": exc.code.name}
            )
        raise


def current() -> CurrentUser:
    """The caller (inside a view protected by one of the decorators above)."""
    user: CurrentUser = current_user._get_current_object()
    return user


def token_claims() -> dict[str, Any]:
    return get_jwt()


def audit_context() -> AuditContext:
    """Who is acting (if anyone has authenticated) and from where, for audit rows."""
    user: CurrentUser | None = None
    if g.get("auth_state") is not None and context.user_id() is not None:
        user = current()
    return AuditContext(
        actor_id=user.id if user else None,
        actor_role=user.role if user else None,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        request_id=context.request_id(),
    )
