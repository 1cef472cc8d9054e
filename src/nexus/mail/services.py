"""Queueing a message: a row in the outbox and a ``mail.send`` job, in the caller's transaction.

A rollback sends nothing; a commit sends exactly one message per row, at
least once: the job marks the row sent after the relay has accepted it, so
only a crash between the two sends it twice (with the same Message-ID).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from nexus.jobs import services as jobs
from nexus.mail.models import OutboundEmail

SEND = "mail.send"


def queue_email(
    session: Session,
    *,
    kind: str,
    to_address: str,
    user_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
    link_path: str | None = None,
) -> OutboundEmail:
    """Record message ``kind`` for ``to_address`` and enqueue its sending; both commit together."""
    message = OutboundEmail(
        kind=kind, to_address=to_address, user_id=user_id, token_id=token_id, link_path=link_path
    )
    session.add(message)
    session.flush()
    # One logical message, one job, however often this transaction's caller retries.
    jobs.enqueue(session, SEND, dedupe_key=f"mail:{message.id}", message_id=str(message.id))
    return message
