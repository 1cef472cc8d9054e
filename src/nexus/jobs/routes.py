"""Job endpoints: a job's status for whoever enqueued it, and the admin canary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, Response, g

from nexus.accounts import auth
from nexus.accounts.models import Role
from nexus.api.envelope import data
from nexus.api.errors import ApiError, ErrorCode
from nexus.api.validation import validate
from nexus.audit import services as audit
from nexus.infrastructure.database import get_database, get_session, transaction
from nexus.infrastructure.queue import get_queues
from nexus.jobs import services
from nexus.jobs.schemas import CanaryIn, JobOut

bp = Blueprint("jobs", __name__)
admin_bp = Blueprint("admin_jobs", __name__)


@bp.get("/jobs/<uuid:job_id>")
@auth.require_auth
def get_job(job_id: uuid.UUID) -> Response:
    caller = auth.current()
    job = services.get_job(get_session(), job_id)
    # Someone else's job is as absent as a missing one.
    if job is None or (job.enqueued_by != caller.id and caller.role != Role.ADMIN):
        raise ApiError(ErrorCode.E_NOT_FOUND, "No such job.")
    return data(JobOut.of(job))


@admin_bp.post("/jobs/canary")
@auth.require_role("admin")
@validate(body=CanaryIn)
def enqueue_canary(body: CanaryIn) -> Response:
    session = get_session()
    caller = auth.current()
    with transaction(session):
        job = services.enqueue(
            session=session,
            queues=get_queues(),
            sessions=get_database().sessionmaker,
            name="jobs.canary",
            arguments={"seconds": body.seconds, "enqueued_at": datetime.now(UTC).isoformat()},
            enqueued_by=caller.id,
            request_id=g.get("request_id"),
        )
        audit.record(
            session=session,
            context=auth.audit_context(),
            action="jobs.canary",
            target_type="job",
            target_id=job.id,
            meta={"seconds": body.seconds},
        )
    session.refresh(job)
    return data(JobOut.of(job), status=202)
