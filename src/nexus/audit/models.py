"""The ``audit_logs`` table: append-only in the database itself (migration 0002).

Its indexes and checks are declared here; the append-only rule is two
triggers (``audit_logs_append_only()``, migration 0002) that refuse every
UPDATE, DELETE and TRUNCATE, which no model can express.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, Text, func
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from nexus.infrastructure.database import Base


class AuditLog(Base):
    """One recorded action. No foreign key to users: history outlives accounts."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        CheckConstraint("status IN ('success', 'failure')", name="status"),
        Index("ix_audit_logs_actor_occurred", "actor_id", "occurred_at"),
        Index("ix_audit_logs_action_occurred", "action", "occurred_at"),
        Index("ix_audit_logs_target_occurred", "target_type", "target_id", "occurred_at"),
        Index("ix_audit_logs_status_occurred", "status", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor_role: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target_type: Mapped[str | None] = mapped_column(Text)
    target_id: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # psycopg returns inet as an ipaddress object; a str is accepted on insert.
    ip: Mapped[IPv4Address | IPv6Address | str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
