"""Tokens: issuing, rotating and revoking JWTs, and reading whether one still holds.

Every login opens a *token family* (a row in ``token_families``); its access
and refresh tokens carry the family id as ``fam``. Refreshing rotates the
family's one valid refresh token; presenting an older one means it was
copied, so the whole family is revoked. Logout revokes the family; a password
change revokes every other family of the user.

PostgreSQL is the truth. Whether a family still holds (not revoked, user
present and active, and the user's role) is read through Redis, cached for
``NEXUS_AUTH_CACHE_SECONDS`` and deleted from the cache after any commit that
changes it. When Redis is down the check reads PostgreSQL; only when neither
answers is the request refused with 503 E_AUTH_UNAVAILABLE.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nexus.accounts.errors import AuthUnavailable, SessionEnded
from nexus.accounts.models import TokenFamily, User
from nexus.config import Settings
from nexus.infrastructure.database import after_commit, transaction
from nexus.infrastructure.logging import get_logger

CACHE_PREFIX = "nexus:auth:family:"
# A cache answers fast or not at all: past this, PostgreSQL is asked instead.
CACHE_TIMEOUT_SECONDS = 0.25
# After a Redis failure, skip the cache this long rather than pay the
# timeout on every request while Redis is down or hung.
CACHE_BACKOFF_SECONDS = 5.0
log = get_logger(__name__)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


@dataclass(frozen=True)
class FamilyState:
    """What a request needs to know about the login a token belongs to."""

    user_id: str
    role: str
    is_active: bool
    revoked: bool

    @property
    def usable(self) -> bool:
        return self.is_active and not self.revoked


def _now() -> datetime:
    return datetime.now(UTC)


def _pair(user: User, family: TokenFamily, settings: Settings) -> TokenPair:
    claims = {"fam": str(family.id)}
    refresh_jti = str(uuid.uuid4())
    family.refresh_jti = refresh_jti
    family.expires_at = _now() + timedelta(days=settings.refresh_token_days)
    access = create_access_token(identity=str(user.id), additional_claims=claims)
    refresh = create_refresh_token(
        identity=str(user.id), additional_claims={**claims, "jti": refresh_jti}
    )
    return TokenPair(access, refresh, settings.access_token_minutes * 60)


def open_family(*, session: Session, user: User, settings: Settings) -> TokenPair:
    """Tokens for a new login (a new family)."""
    family = TokenFamily(id=uuid.uuid4(), user_id=user.id, refresh_jti="", expires_at=_now())
    session.add(family)
    pair = _pair(user, family, settings)
    session.flush()
    return pair


class RefreshReuseError(Exception):
    """A refresh token older than the family's current one came back."""

    def __init__(self, family_id: uuid.UUID) -> None:
        super().__init__(f"refresh token reuse in family {family_id}")
        self.family_id = family_id


def rotate(
    *, session: Session, user: User, claims: dict[str, Any], settings: Settings
) -> TokenPair:
    """New tokens for a valid refresh token; the old refresh token stops working.

    Raises :class:`RefreshReuseError` when the token was already rotated; the
    caller revokes the family in a transaction that is not rolled back.
    """
    family = session.scalar(
        select(TokenFamily).where(TokenFamily.id == uuid.UUID(claims["fam"])).with_for_update()
    )
    if family is None or family.revoked_at is not None:
        raise SessionEnded("The session has ended; sign in again.")
    if family.refresh_jti != claims["jti"]:
        raise RefreshReuseError(family.id)
    return _pair(user, family, settings)


def revoke_families(
    *, session: Session, family_ids: list[uuid.UUID], reason: str, cache: FamilyCache
) -> None:
    if not family_ids:
        return
    session.execute(
        update(TokenFamily)
        .where(TokenFamily.id.in_(family_ids), TokenFamily.revoked_at.is_(None))
        .values(revoked_at=_now(), revoked_reason=reason)
    )
    after_commit(session, lambda: cache.forget(family_ids))


def purge_expired(*, session: Session, before: datetime, batch: int = 5_000) -> int:
    """Delete families that expired before ``before``, a batch per transaction; how many."""
    deleted = 0
    while True:
        ids = select(TokenFamily.id).where(TokenFamily.expires_at < before).limit(batch)
        with transaction(session):
            count = len(
                session.scalars(
                    delete(TokenFamily).where(TokenFamily.id.in_(ids)).returning(TokenFamily.id)
                ).all()
            )
        deleted += count
        if count < batch:
            return deleted


def revoke_user(
    *,
    session: Session,
    user_id: uuid.UUID,
    reason: str,
    cache: FamilyCache,
    keep: uuid.UUID | None = None,
) -> None:
    """Revoke every family of ``user_id`` (but ``keep``)."""
    query = select(TokenFamily.id).where(TokenFamily.user_id == user_id)
    if keep is not None:
        query = query.where(TokenFamily.id != keep)
    revoke_families(
        session=session, family_ids=list(session.scalars(query)), reason=reason, cache=cache
    )


def forget_user(*, session: Session, user_id: uuid.UUID, cache: FamilyCache) -> None:
    """Drop the cached state of every family of ``user_id`` once this commits (role changes)."""
    family_ids = list(session.scalars(select(TokenFamily.id).where(TokenFamily.user_id == user_id)))
    after_commit(session, lambda: cache.forget(family_ids))


class FamilyCache:
    """Read-through Redis cache of :class:`FamilyState`, PostgreSQL behind it."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self._skip_until = 0.0

    def _usable(self) -> bool:
        return bool(self.ttl) and time.monotonic() >= self._skip_until

    def _failed(self, exc: RedisError) -> None:
        self._skip_until = time.monotonic() + CACHE_BACKOFF_SECONDS
        log.warning("auth.cache_unavailable", error=str(exc), retry_in_s=CACHE_BACKOFF_SECONDS)

    def state(self, *, session: Session, family_id: str, user_id: str) -> FamilyState | None:
        """The family's state, or ``None`` if it or its user no longer exists."""
        key = CACHE_PREFIX + family_id
        cached = None
        if self._usable():
            try:
                cached = self.redis.get(key)
            except RedisError as exc:
                self._failed(exc)
            if cached:
                state = FamilyState(**json.loads(cached))
                return state if state.user_id == user_id else None
        try:
            row = session.execute(
                select(TokenFamily.revoked_at, User.role, User.is_active)
                .join(User, User.id == TokenFamily.user_id)
                .where(TokenFamily.id == uuid.UUID(family_id), User.id == uuid.UUID(user_id))
            ).one_or_none()
        except SQLAlchemyError as exc:
            log.error("auth.state_unavailable", error=str(exc))
            raise AuthUnavailable("Credentials cannot be checked right now; retry later.") from None
        if row is None:
            return None
        state = FamilyState(user_id, row.role, row.is_active, row.revoked_at is not None)
        if self._usable():
            try:
                self.redis.set(key, json.dumps(asdict(state)), ex=self.ttl)
            except RedisError as exc:
                self._failed(exc)
        return state

    def forget(self, family_ids: list[uuid.UUID]) -> None:
        if not family_ids:
            return
        try:
            self.redis.delete(*(CACHE_PREFIX + str(family_id) for family_id in family_ids))
        except RedisError as exc:
            # A stale entry can outlive this for at most the cache TTL.
            log.error("auth.cache_forget_failed", families=len(family_ids), error=str(exc))
