"""The canary job: proves the pipeline end to end, and measures it.

An operator enqueues one (``POST /api/v1/admin/jobs/canary``); it sleeps for
the seconds asked and answers how long it waited in the queue and how long
it ran. Its row's ``attempts`` counts its runs.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from nexus.jobs.registry import job_type


@job_type("jobs.canary", priority="default", timeout=360, retries=2, retry_intervals=(1, 5))
def canary(seconds: float, enqueued_at: str) -> dict[str, Any]:
    started = datetime.now(UTC)
    waited = (started - datetime.fromisoformat(enqueued_at)).total_seconds()
    time.sleep(seconds)
    return {
        "queue_wait_ms": round(waited * 1000, 1),
        "run_ms": round((datetime.now(UTC) - started).total_seconds() * 1000, 1),
        "worker_pid": os.getpid(),
    }
