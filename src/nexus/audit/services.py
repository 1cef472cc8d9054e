"""Recording and reading the audit log.

``record`` adds a row to the caller's session, so it commits or rolls back
with the change it describes. ``record_failure`` commits in a session of its
own, so a refused action is remembered even though its own transaction rolls
back. ``meta`` never holds passwords, tokens or hashes: keys that look like
one are refused. Services take their context (actor, ip, request id) as
arguments; ``routes`` build it from the request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nexus.audit.models import AuditLog
from nexus.infrastructure.keyset import Keyset

_FORBIDDEN_META_KEY = re.compile(r"pass|secret|token|hash|authorization|cookie", re.IGNORECASE)


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; all ``None`` before anyone is known."""

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    def as_actor(self, actor_id: uuid.UUID, actor_role: str) -> AuditContext:
        return AuditContext(actor_id, actor_role, self.ip, self.user_agent, self.request_id)


def _printable(text: str) -> str:
    """A header as the row can hold it: PostgreSQL text takes no NUL, and control
    characters only garble whoever reads the log."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def _row(
    context: AuditContext,
    action: str,
    *,
    status: str,
    target_type: str | None,
    target_id: object | None,
    meta: dict[str, Any] | None,
) -> AuditLog:
    for key in meta or {}:
        if _FORBIDDEN_META_KEY.search(key):
            raise ValueError(f"audit meta key {key!r} looks like a secret")
    return AuditLog(
        actor_id=context.actor_id,
        actor_role=context.actor_role,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        meta=meta or {},
        ip=context.ip,
        user_agent=_printable(context.user_agent or "")[:512] or None,
        status=status,
        request_id=context.request_id,
    )


def record(
    *,
    session: Session,
    context: AuditContext,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Record a successful ``action`` in the caller's transaction."""
    session.add(
        _row(
            context,
            action,
            status="success",
            target_type=target_type,
            target_id=target_id,
            meta=meta,
        )
    )


def record_failure(
    *,
    sessions: sessionmaker[Session],
    context: AuditContext,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Record a refused or failed ``action`` in a transaction of its own."""
    with sessions() as session, session.begin():
        session.add(
            _row(
                context,
                action,
                status="failure",
                target_type=target_type,
                target_id=target_id,
                meta=meta,
            )
        )


@dataclass(frozen=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# Newest first; ids only grow, so the id alone orders them.
ENTRIES_KEYSET = Keyset((AuditLog.id,), descending=True)


def succeeded_from(
    session: Session, *, actor_id: uuid.UUID, action: str, address: str, since: datetime
) -> bool:
    """Whether ``actor_id`` did ``action`` successfully from ``address`` since ``since``."""
    found = session.scalar(
        select(AuditLog.id)
        .where(
            AuditLog.actor_id == actor_id,
            AuditLog.occurred_at >= since,
            AuditLog.action == action,
            AuditLog.status == "success",
            AuditLog.ip == address,
        )
        .limit(1)
    )
    return found is not None


def list_entries(
    *, session: Session, filters: AuditFilter, after: tuple[Any, ...] | None, limit: int
) -> list[AuditLog]:
    """Entries matching ``filters``, after the key ``after`` (``ENTRIES_KEYSET``)."""
    query = select(AuditLog)
    if filters.actor_id is not None:
        query = query.where(AuditLog.actor_id == filters.actor_id)
    if filters.action is not None:
        query = query.where(AuditLog.action == filters.action)
    if filters.status is not None:
        query = query.where(AuditLog.status == filters.status)
    if filters.since is not None:
        query = query.where(AuditLog.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditLog.occurred_at < filters.until)
    return list(session.scalars(ENTRIES_KEYSET.page(query, after, limit)))
