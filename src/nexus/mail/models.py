"""The outbox: one row per message to send, written in the transaction that has a reason to.

The row holds what the sending job needs — the kind of message (its
templates), the recipient and, for a message with a link, the id its token
is derived from — so the job's arguments carry only the row's id: no
address, no token, in the jobs table or the logs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from nexus.infrastructure.database import Base


class OutboundEmail(Base):
    __tablename__ = "outbound_emails"
    __table_args__ = (Index("ix_outbound_emails_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    kind: Mapped[str] = mapped_column(Text)
    to_address: Mapped[str] = mapped_column(Text)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The token in the message's link is derived from this id (nexus.mail.tokens).
    token_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Where the link points, under NEXUS_PUBLIC_URL: "/verify-email".
    link_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
