"""Shapes of the audit endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress

from nexus.api.envelope import PageQuery
from nexus.api.validation import Timestamp


class AuditQuery(PageQuery):
    actor_id: uuid.UUID | None = None
    action: str | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["success", "failure"] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    meta: dict[str, Any]
    ip: IPvAnyAddress | None
    user_agent: str | None
    status: str
    request_id: str | None
