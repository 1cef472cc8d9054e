"""Libraries' background work: ingesting an upload into reading fragments."""

from __future__ import annotations

import uuid
from typing import Any

from rq.timeouts import JobTimeoutException

from nexus.infrastructure.database import get_session
from nexus.jobs.registry import job_type
from nexus.libraries import media


# unique: a reprocess while an ingestion waits or runs gets that one.
# Retries cover PostgreSQL outages; an unreadable file ends `failed` at once.
@job_type(media.INGEST, priority="default", timeout=300, retries=3, unique=True)
def ingest(media_id: str) -> dict[str, Any]:
    """Turn the media's stored original into fragments (safe to run twice)."""
    outcome = media.ingest(get_session(), uuid.UUID(media_id), timed_out=JobTimeoutException)
    return outcome.as_result()
