"""Who and what the current request, job or command acts for: its request id and user id.

Kept in a context variable, one :class:`Scope` per request or job: the
request middleware opens one around each request (before Flask, so the
access line written after Flask is done can still read it), the worker one
around each job, from the job's metadata, so work enqueued from a job
carries its origin on. Authentication adds the user to the open scope.
Outside any scope (a shell, a CLI command) there is nothing to record and
both readers answer ``None``. Knows nothing of how a user authenticates.
Imports no feature package.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class Scope:
    """One request's or one job's identity; ``user_id`` is filled in by authentication."""

    request_id: str | None = None
    user_id: uuid.UUID | None = None


_current: ContextVar[Scope | None] = ContextVar("nexus_scope", default=None)


def open_scope(request_id: str | None = None, user_id: uuid.UUID | None = None) -> Scope:
    """Start a scope for the rest of the current context (the caller runs in a copied one)."""
    scope = Scope(request_id, user_id)
    _current.set(scope)
    return scope


@contextmanager
def scope(request_id: str | None = None, user_id: uuid.UUID | None = None) -> Iterator[Scope]:
    """A scope for the block (a job, a test); the previous one is back after it."""
    new = Scope(request_id, user_id)
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


def bind(*, user_id: uuid.UUID) -> None:
    """Record the acting user in the open scope (none open: nothing to record)."""
    current = _current.get()
    if current is not None:
        current.user_id = user_id


def request_id() -> str | None:
    """The current request's id (or the id of the request that enqueued this job)."""
    current = _current.get()
    return current.request_id if current is not None else None


def user_id() -> uuid.UUID | None:
    """The user the current request or job acts for, if any."""
    current = _current.get()
    return current.user_id if current is not None else None
