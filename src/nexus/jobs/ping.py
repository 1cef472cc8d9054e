"""The example job: ``ping`` proves the whole path, enqueue → Redis → worker → PostgreSQL → back.

``ping`` runs in a worker and answers with who ran it and the PostgreSQL it
reached through its own session; ``send_ping`` enqueues one and waits for
the answer (``flask --app nexus jobs ping``). A ping no worker takes within
the timeout is withdrawn, so a worker started later does not run a stale one.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from rq import Queue
from rq.results import Result
from sqlalchemy import text

from nexus.infrastructure.database import get_session
from nexus.infrastructure.logging import get_logger

log = get_logger(__name__)


def ping(sent_at: float) -> dict[str, Any]:
    """Runs in the worker: who answered, and which PostgreSQL it reached."""
    session = get_session()
    server_version = session.execute(text("SHOW server_version")).scalar_one()
    log.info("jobs.ping.answered", latency_ms=round((time.time() - sent_at) * 1000, 1))
    return {
        "pong": True,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "postgres": server_version,
        "sent_at": sent_at,
    }


@dataclass(frozen=True)
class PingReply:
    job_id: str
    answer: dict[str, Any]
    round_trip_ms: float


class PingError(Exception):
    """The ping was not answered: no worker took it in time, or it failed."""


def send_ping(queue: Queue, *, timeout: float) -> PingReply:
    """Enqueue a ping on ``queue`` and wait up to ``timeout`` seconds for its answer."""
    started = time.perf_counter()
    deadline = started + timeout
    job = queue.enqueue(
        ping,
        time.time(),
        # Withdrawn by RQ if still queued after the wait; kept briefly once done.
        ttl=math.ceil(timeout) + 1,
        result_ttl=60,
        failure_ttl=600,
        job_timeout=30,
    )
    result: Result | None = None
    # Short blocking reads: the shared client's socket timeout is shorter than
    # a whole wait may be.
    while result is None and time.perf_counter() < deadline:
        result = job.latest_result(timeout=1)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if result is None:
        job.cancel()
        job.delete()
        raise PingError(
            f"No worker answered within {timeout:g} s. Is one running? "
            "Start one with `make worker` (or `make dev`)."
        )
    if result.type != Result.Type.SUCCESSFUL:
        last_line = (result.exc_string or "unknown error").strip().splitlines()[-1]
        raise PingError(f"The ping job failed in the worker: {last_line}")
    answer = result.return_value
    if not isinstance(answer, dict):
        raise PingError(f"The worker answered {answer!r}, not a pong")
    return PingReply(job_id=job.id, answer=answer, round_trip_ms=elapsed_ms)
