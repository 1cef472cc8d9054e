"""Who and what the current request, job or command acts for: its request id and user id.

Kept on ``flask.g`` of the current app context. The request hooks set the
request id, authentication sets the user, and the worker sets both from the
job it runs, so work enqueued from a job carries its origin on. Read by the
job engine and the access log; knows nothing of how a user authenticates.
Imports no feature package.
"""

from __future__ import annotations

import uuid

from flask import g, has_app_context


def bind(*, request_id: str | None = None, user_id: uuid.UUID | None = None) -> None:
    """Record the request id and/or acting user of the current app context."""
    if request_id is not None:
        g.request_id = request_id
    if user_id is not None:
        g.user_id = user_id


def request_id() -> str | None:
    """The current request's id (or the id of the request that enqueued this job)."""
    if not has_app_context():
        return None
    value: str | None = g.get("request_id")
    return value


def user_id() -> uuid.UUID | None:
    """The user the current request or job acts for, if any."""
    if not has_app_context():
        return None
    value: uuid.UUID | None = g.get("user_id")
    return value
