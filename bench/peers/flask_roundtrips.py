"""The plain-Flask peer of /healthz: its round trips (PostgreSQL SELECT 1, Redis PING) by hand.

A small pool of psycopg connections and a redis-py client, nothing else: what
a hand-written readiness probe costs, for ``make bench`` to hold Nexus's against.
"""

from __future__ import annotations

import os
import queue

import psycopg
from flask import Flask
from redis import Redis

app = Flask(__name__)
_DATABASE = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
_pool: queue.LifoQueue[psycopg.Connection[tuple[int]]] = queue.LifoQueue()
_redis = Redis.from_url(os.environ["REDIS_URL"])


@app.get("/healthz")
def healthz() -> dict[str, str]:
    try:
        connection = _pool.get_nowait()
    except queue.Empty:
        connection = psycopg.connect(_DATABASE, autocommit=True)
    try:
        connection.execute("SELECT 1")
    finally:
        _pool.put(connection)
    _redis.ping()
    return {"status": "ok", "db": "ok", "redis": "ok"}
