"""Redis: one connection pool per process, shared by the app, RQ and health checks.

Owns how a Redis client is built from the settings (timeouts, client name,
Redis Sentinel) and how code reaches it (``get_redis()``). redis-py's pool
notices a fork and opens fresh connections in the child by itself. With
``NEXUS_REDIS_SENTINELS`` set, the pool asks the sentinels for the current
master of ``NEXUS_REDIS_SENTINEL_MASTER`` and asks again when a connection
fails or finds the master demoted (a failover), so the app, the rate
limiter and RQ follow the master without a restart. Also checks, once at
start, that Redis will not evict keys: RQ's jobs and queues are keys, and
an evicting Redis loses them silently. Imports no feature package.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from nexus.config import Settings
from nexus.infrastructure.logging import get_logger

EXTENSION_KEY = "nexus.redis"
log = get_logger(__name__)


def create_redis(
    settings: Settings, *, client_name: str = "nexus", timeout: float | None = None
) -> Redis:
    """A client on a new pool; call once per process and share the result.

    ``timeout`` (seconds, for connecting and for each reply) makes a client
    for optional work, like a cache, that gives up at once instead of retrying.
    """
    extra: dict[str, Any] = {}
    if timeout is not None:
        extra["retry"] = Retry(NoBackoff(), 0)
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout or settings.redis_connect_timeout,
        "socket_timeout": timeout or settings.redis_socket_timeout,
        **extra,
        # A connection idle behind a NAT or a restarted Redis is checked before
        # use instead of failing the command that happens to pick it up.
        "health_check_interval": 30,
        "client_name": client_name,
    }
    sentinels = settings.redis_sentinel_addresses
    if not sentinels:
        return Redis(connection_pool=ConnectionPool.from_url(settings.redis_url, **options))
    # The URL's database, user, password and TLS; its host is the sentinels' to say.
    target: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    password = settings.redis_sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels,
        sentinel_kwargs={
            "socket_connect_timeout": options["socket_connect_timeout"],
            "socket_timeout": options["socket_timeout"],
            "password": password.get_secret_value() if password else None,
        },
    )
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master,
        sentinel,
        db=target.get("db", 0),
        username=target.get("username"),
        password=target.get("password"),
        ssl=settings.redis_url.startswith("rediss://"),
        **options,
    )
    return Redis(connection_pool=pool)


def eviction_policy(redis: Redis) -> str | None:
    """Redis' ``maxmemory-policy``, or ``None`` where CONFIG is not allowed (managed Redis)."""
    try:
        answer: dict[str, str] = redis.config_get("maxmemory-policy")  # type: ignore[assignment]
    except ResponseError:
        return None
    return answer.get("maxmemory-policy")


def warn_if_evicting(redis: Redis) -> None:
    """Log a warning when Redis may evict keys: RQ would lose jobs and queues."""
    try:
        policy = eviction_policy(redis)
    except RedisError:
        return  # unreachable now: /healthz and the worker say so
    if policy is None:
        log.info("redis.eviction_policy_unknown", hint="set maxmemory-policy noeviction")
    elif policy != "noeviction":
        log.warning(
            "redis.evicting",
            maxmemory_policy=policy,
            hint="RQ's jobs are Redis keys: set maxmemory-policy noeviction",
        )


def init_app(app: Flask, redis: Redis) -> None:
    app.extensions[EXTENSION_KEY] = redis


def get_redis() -> Redis:
    """The current app's Redis client."""
    redis: Redis = current_app.extensions[EXTENSION_KEY]
    return redis
