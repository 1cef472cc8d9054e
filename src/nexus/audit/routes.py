"""``GET /api/v1/admin/audit-logs``: the audit trail, newest first, for admins."""

from __future__ import annotations

from flask import Blueprint, Response

from nexus.accounts.auth import require_role
from nexus.api.envelope import decode_cursor, encode_cursor, page
from nexus.api.errors import ApiError, ErrorCode
from nexus.api.validation import validate
from nexus.audit import services
from nexus.audit.schemas import AuditEntryOut, AuditQuery
from nexus.infrastructure.database import get_session

bp = Blueprint("audit", __name__)


@bp.get("/audit-logs")
@require_role("admin")
@validate(query=AuditQuery)
def list_audit_logs(query: AuditQuery) -> Response:
    after_id = None
    if query.cursor is not None:
        after_id = decode_cursor(query.cursor).get("id")
        if not isinstance(after_id, int):
            raise ApiError(
                ErrorCode.E_INVALID_REQUEST,
                "The cursor is not one this API issued.",
                errors=[{"field": "cursor", "message": "Invalid cursor."}],
            )
    entries = services.list_entries(
        session=get_session(),
        filters=services.AuditFilter(
            query.actor_id, query.action, query.status, query.since, query.until
        ),
        after_id=after_id,
        limit=query.limit + 1,
    )
    shown = entries[: query.limit]
    next_cursor = encode_cursor({"id": shown[-1].id}) if len(entries) > query.limit else None
    return page(
        [AuditEntryOut.model_validate(entry) for entry in shown],
        next_cursor=next_cursor,
        limit=query.limit,
    )
