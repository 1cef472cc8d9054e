"""Redis: one connection pool per process, shared by the app, RQ and health checks.

Owns how a Redis client is built from the settings (timeouts, client name) and
how code reaches it (``get_redis()``). redis-py's pool notices a fork and
opens fresh connections in the child by itself. Imports no feature package.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexus.config import Settings

EXTENSION_KEY = "nexus.redis"


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
    pool = ConnectionPool.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout or settings.redis_connect_timeout,
        socket_timeout=timeout or settings.redis_socket_timeout,
        **extra,
        # A connection idle behind a NAT or a restarted Redis is checked before
        # use instead of failing the command that happens to pick it up.
        health_check_interval=30,
        client_name=client_name,
    )
    return Redis(connection_pool=pool)


def init_app(app: Flask, redis: Redis) -> None:
    app.extensions[EXTENSION_KEY] = redis


def get_redis() -> Redis:
    """The current app's Redis client."""
    redis: Redis = current_app.extensions[EXTENSION_KEY]
    return redis
