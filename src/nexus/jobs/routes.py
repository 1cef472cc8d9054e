"""Job endpoints: status for whoever enqueued a job; list, retry, cancel and canary for admins."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Blueprint, Response

from nexus.accounts import auth
from nexus.accounts.models import Role
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.errors import ApiError, ErrorCode
from nexus.api.pagination import keyset_page
from nexus.api.validation import validate
from nexus.audit import services as audit
from nexus.infrastructure.database import get_database, get_session, transaction
from nexus.infrastructure.queue import get_queues
from nexus.infrastructure.redis import get_redis
from nexus.jobs import canary, services
from nexus.jobs.models import Job
from nexus.jobs.schemas import AdminJobOut, CanaryIn, JobOut, JobQuery, QueueOut, WorkerOut

bp = Blueprint("jobs", __name__)
JOB_ID = "$response.body#/data/id"  # where an answer holds the job's id, for links
admin_bp = Blueprint("admin_jobs", __name__)


@bp.get("/jobs/<uuid:job_id>")
@responds(200, JobOut)
@auth.require_auth
def get_job(job_id: uuid.UUID) -> Response:
    """A job the caller enqueued (admins: any job): its status, attempts and result."""
    caller = auth.current()
    job = services.get_job(get_session(), job_id)
    # Someone else's job is as absent as a missing one.
    if job is None or (job.enqueued_by != caller.id and caller.role != Role.ADMIN):
        raise ApiError(ErrorCode.E_NOT_FOUND, "No such job.")
    return data(JobOut.of(job))


@admin_bp.get("/jobs")
@responds(200, AdminJobOut, envelope="page")
@auth.require_role("admin")
@validate(query=JobQuery)
def list_jobs(query: JobQuery) -> Response:
    """Jobs, newest first, filtered by status or name (admins)."""
    return keyset_page(
        query,
        name="admin.jobs",
        keyset=services.JOBS_KEYSET,
        fetch=lambda after, limit: services.list_jobs(
            get_session(), status=query.status, name=query.name, after=after, limit=limit
        ),
        render=AdminJobOut.of,
    )


@admin_bp.get("/queues")
@responds(200, QueueOut, envelope="list")
@auth.require_role("admin")
def list_queues() -> Response:
    """Each queue, high first: jobs waiting in RQ, rows waiting, the oldest's age (admins)."""
    states = services.queue_states(get_session(), get_queues())
    return data([QueueOut.model_validate(state) for state in states])


@admin_bp.get("/workers")
@responds(200, WorkerOut, envelope="list")
@auth.require_role("admin")
def list_workers() -> Response:
    """The workers RQ knows of: state, queues, current job and last heartbeat (admins)."""
    return data([WorkerOut.model_validate(state) for state in services.worker_states(get_redis())])


@admin_bp.post("/jobs/<uuid:job_id>/retry")
@responds(200, AdminJobOut, codes=(ErrorCode.E_CONFLICT,))
@auth.require_role("admin")
def retry_job(job_id: uuid.UUID) -> Response:
    """Run a failed or canceled job again (admins)."""
    session = get_session()
    with transaction(session):
        job = services.retry(
            session, job_id, queues=get_queues(), sessions=get_database().sessionmaker
        )
        _audit("jobs.retry", job)
    return _fresh(job)


@admin_bp.post("/jobs/<uuid:job_id>/cancel")
@responds(200, AdminJobOut, codes=(ErrorCode.E_CONFLICT,))
@auth.require_role("admin")
def cancel_job(job_id: uuid.UUID) -> Response:
    """Cancel a job that has not ended (admins); a running one is stopped."""
    session = get_session()
    with transaction(session):
        job = services.cancel(session, job_id, redis=get_redis())
        _audit("jobs.cancel", job)
    return _fresh(job)


def _audit(action: str, job: Job) -> None:
    audit.record(
        session=get_session(),
        context=auth.audit_context(),
        action=action,
        target_type="job",
        target_id=job.id,
        meta={"name": job.name, "attempts": job.attempts},
    )


def _fresh(job: Job) -> Response:
    # After-commit delivery may have moved it on (pending -> queued).
    get_session().refresh(job)
    return data(AdminJobOut.of(job))


@admin_bp.post("/jobs/canary")
@responds(
    202,
    JobOut,
    links={
        "GetJob": ("jobs.get_job", {"job_id": JOB_ID}),
        "CancelJob": ("admin_jobs.cancel_job", {"job_id": JOB_ID}),
        "RetryJob": ("admin_jobs.retry_job", {"job_id": JOB_ID}),
    },
)
@auth.require_role("admin")
@validate(body=CanaryIn)
def enqueue_canary(body: CanaryIn) -> Response:
    """Enqueue a canary job that sleeps ``seconds`` and reports (admins)."""
    session = get_session()
    with transaction(session):
        job = services.enqueue(
            session,
            canary.NAME,
            seconds=body.seconds,
            enqueued_at=datetime.now(UTC).isoformat(),
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
