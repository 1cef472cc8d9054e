"""``GET /api/v1/admin/audit-logs``: the audit trail, newest first, for admins."""

from __future__ import annotations

from flask import Blueprint, Response

from nexus.accounts.auth import require_role
from nexus.api.contract import responds
from nexus.api.pagination import keyset_page
from nexus.api.validation import validate
from nexus.audit import services
from nexus.audit.schemas import AuditEntryOut, AuditQuery
from nexus.infrastructure.database import get_session

bp = Blueprint("audit", __name__)


@bp.get("/audit-logs")
@responds(200, AuditEntryOut, envelope="page")
@require_role("admin")
@validate(query=AuditQuery)
def list_audit_logs(query: AuditQuery) -> Response:
    """The audit trail, newest first, filtered by actor, action, status and time (admins)."""
    filters = services.AuditFilter(
        query.actor_id, query.action, query.status, query.since, query.until
    )
    return keyset_page(
        query,
        name="admin.audit-logs",
        keyset=services.ENTRIES_KEYSET,
        fetch=lambda after, limit: services.list_entries(
            session=get_session(), filters=filters, after=after, limit=limit
        ),
        render=AuditEntryOut.model_validate,
    )
