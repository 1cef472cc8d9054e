"""Login lockout: an account that keeps failing to sign in is locked for a while.

``NEXUS_LOGIN_LOCKOUT_FAILURES`` failed logins for one account within
``NEXUS_LOGIN_LOCKOUT_WINDOW_SECONDS`` lock its login for a cooling-off
period (``NEXUS_LOGIN_LOCKOUT_SECONDS``) that doubles at each new lock, up
to ``NEXUS_LOGIN_LOCKOUT_MAX_SECONDS``, and starts again from the first
period a day after the last lock. The counters live in Redis (atomic
pipelines: a count that expires with its window); a good login clears them.

What keeps an attacker from locking the owner out for ever: a login from an
address the account signed in from within ``NEXUS_LOGIN_KNOWN_ADDRESS_DAYS``
(the audit log's successful ``auth.login`` rows) is never refused by the
lock. What keeps the lock from telling anything: a refused login costs the
same password verification and gets the same 401 as a wrong password or an
unknown address. If Redis cannot be reached, there is no lock (fail open,
with a warning), as for rate limits.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from nexus.config import Settings
from nexus.infrastructure.logging import get_logger

log = get_logger(__name__)
PREFIX = "nexus:lockout:"
# A lock's level (how many times its period has doubled) is forgotten this
# long after the last lock.
LEVEL_MEMORY_SECONDS = 86_400
# After a Redis error, the lock is not consulted for this long.
BACKOFF_SECONDS = 5.0


@dataclass
class Lockout:
    redis: Redis
    failures: int
    window_seconds: int
    first_seconds: int
    max_seconds: int
    _skip_until: float = 0.0

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Lockout:
        return cls(
            redis=redis,
            failures=settings.login_lockout_failures,
            window_seconds=settings.login_lockout_window_seconds,
            first_seconds=settings.login_lockout_seconds,
            max_seconds=settings.login_lockout_max_seconds,
        )

    @property
    def enabled(self) -> bool:
        return self.failures > 0 and time.monotonic() >= self._skip_until

    def locked(self, user_id: uuid.UUID) -> bool:
        """Whether the account's login is locked now."""
        if not self.enabled:
            return False
        try:
            return bool(self.redis.exists(f"{PREFIX}until:{user_id}"))
        except RedisError as exc:
            self._failed(exc)
            return False

    def failed(self, user_id: uuid.UUID) -> int | None:
        """Count a failed login; the seconds of the lock it starts, if it starts one."""
        if not self.enabled:
            return None
        count_key, level_key = f"{PREFIX}failures:{user_id}", f"{PREFIX}level:{user_id}"
        try:
            with self.redis.pipeline() as pipe:
                pipe.incr(count_key)
                pipe.expire(count_key, self.window_seconds, nx=True)
                count = int(pipe.execute()[0])
            if count < self.failures:
                return None
            with self.redis.pipeline() as pipe:
                pipe.incr(level_key)
                pipe.expire(level_key, LEVEL_MEMORY_SECONDS)
                pipe.delete(count_key)
                level = int(pipe.execute()[0])
            seconds: int = min(self.first_seconds * 2 ** min(level - 1, 30), self.max_seconds)
            self.redis.set(f"{PREFIX}until:{user_id}", "1", ex=seconds)
        except RedisError as exc:
            self._failed(exc)
            return None
        log.warning("auth.login_locked", user_id=str(user_id), seconds=seconds, level=level)
        return seconds

    def succeeded(self, user_id: uuid.UUID) -> None:
        """A good login: the failures so far, and the doubling, are forgotten."""
        if not self.enabled:
            return
        try:
            self.redis.delete(f"{PREFIX}failures:{user_id}", f"{PREFIX}level:{user_id}")
        except RedisError as exc:
            self._failed(exc)

    def _failed(self, exc: RedisError) -> None:
        self._skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning("auth.lockout_unavailable", error=str(exc), retry_in_s=BACKOFF_SECONDS)
