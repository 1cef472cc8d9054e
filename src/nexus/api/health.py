"""Ops endpoints: ``/livez`` (the process answers) and ``/healthz`` (its dependencies do).

``/healthz`` probes PostgreSQL (``SELECT 1``) and Redis (``PING``) at the
same time under one deadline. Each dependency has one probe thread and at
most one probe in flight: concurrent requests share it, a server that hangs
(SIGSTOP, a full disk) holds that one thread, not one per request, and the
next probe starts as soon as it answers, so the endpoint recovers by itself.
Probe threads are daemons so a hung probe never blocks the process from
exiting.

PostgreSQL is probed on one kept connection, so a busy probe costs a round
trip, not a connection; every ``FRESH_CONNECTION_SECONDS`` (and after any
failure) the probe opens a new one instead, because a kept connection keeps
answering while the postmaster refuses or hangs on new ones, which the
app's own pool would soon need.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Literal

from flask import Blueprint, Response, current_app, jsonify
from pydantic import BaseModel
from redis import Redis
from sqlalchemy import create_engine, text

from nexus.api.contract import responds
from nexus.config import Settings
from nexus.infrastructure.logging import get_logger

EXTENSION_KEY = "nexus.health"
FRESH_CONNECTION_SECONDS = 5.0
log = get_logger(__name__)
bp = Blueprint("health", __name__)


class SingleFlightProbe:
    """Runs ``check`` on its own daemon thread, never more than one at a time."""

    def __init__(self, name: str, check: Callable[[], object]) -> None:
        self.name = name
        self._check = check
        self._lock = threading.Lock()
        self._in_flight: Future[None] | None = None
        self._requests: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()
        self._thread_pid: int | None = None  # a forked child starts its own thread

    def start(self) -> Future[None]:
        """The running probe, or a new one if none is running."""
        with self._lock:
            if self._in_flight is None or self._in_flight.done():
                if self._thread_pid != os.getpid():
                    self._thread_pid = os.getpid()
                    threading.Thread(
                        target=self._serve, name=f"health-{self.name}", daemon=True
                    ).start()
                future: Future[None] = Future()
                self._in_flight = future
                self._requests.put(future)
            return self._in_flight

    def _serve(self) -> None:
        while True:
            future = self._requests.get()
            try:
                self._check()
            except Exception as exc:  # any failure means "error"
                future.set_exception(exc)
            else:
                future.set_result(None)


class HealthCheck:
    """Probes every dependency concurrently and reports ``ok`` or ``error`` for each."""

    def __init__(self, probes: Mapping[str, Callable[[], object]], timeout: float) -> None:
        self.probes = [SingleFlightProbe(name, check) for name, check in probes.items()]
        self.timeout = timeout

    def run(self) -> dict[str, str]:
        deadline = time.monotonic() + self.timeout
        futures = {probe.name: probe.start() for probe in self.probes}
        results = {}
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = "error"
                log.warning("health.probe_timeout", dependency=name, timeout_s=self.timeout)
            except Exception as exc:
                results[name] = "error"
                log.warning("health.probe_failed", dependency=name, error=str(exc))
            else:
                results[name] = "ok"
        return results


def create_health_check(settings: Settings, redis: Redis) -> HealthCheck:
    # One kept connection (the probe thread is its only user), renewed now and then.
    probe_engine = create_engine(
        settings.database_url,
        pool_size=1,
        max_overflow=0,
        connect_args={
            "connect_timeout": max(1, math.ceil(settings.health_timeout)),
            "application_name": "nexus-health",
        },
    )
    fresh_at = [0.0]  # when the probe last opened a new connection

    def check_db() -> None:
        if time.monotonic() - fresh_at[0] >= FRESH_CONNECTION_SECONDS:
            probe_engine.dispose()  # the next connect is a new connection
            fresh_at[0] = time.monotonic()
        try:
            with probe_engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            fresh_at[0] = 0.0  # after a failure, prove a new connection works
            raise

    return HealthCheck({"db": check_db, "redis": redis.ping}, timeout=settings.health_timeout)


class Liveness(BaseModel):
    status: Literal["ok"]


class Health(BaseModel):
    """Each dependency's state, and the whole: ``degraded`` when any is ``error``."""

    status: Literal["ok", "degraded"]
    db: Literal["ok", "error"]
    redis: Literal["ok", "error"]


@bp.get("/livez")
@responds(200, Liveness, envelope="bare", outage=False)
def livez() -> Response:
    """The process is up and serving; touches no dependency."""
    # The answer never changes: its bytes are made once, not serialised per probe.
    return Response(_ALIVE, content_type="application/json", headers=_ALIVE_HEADERS)


_ALIVE = json.dumps({"status": "ok"}, separators=(",", ":")).encode() + b"\n"
_ALIVE_HEADERS = {"Cache-Control": "no-store"}


@bp.get("/healthz")
@responds(200, Health, envelope="bare", outage=False)
@responds(503, Health, envelope="bare", description="PostgreSQL or Redis did not answer in time.")
def healthz() -> Response:
    """200 when PostgreSQL and Redis both answer within the deadline, else 503."""
    check: HealthCheck = current_app.extensions[EXTENSION_KEY]
    results = check.run()
    healthy = all(value == "ok" for value in results.values())
    response = jsonify({"status": "ok" if healthy else "degraded", **results})
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
