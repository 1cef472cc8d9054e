"""``mail.send``: render one outbox row and hand it to the SMTP relay; safe to run twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update

from nexus.config import current_settings
from nexus.infrastructure import metrics
from nexus.infrastructure.database import get_session, transaction
from nexus.infrastructure.logging import get_logger
from nexus.jobs.registry import job_type
from nexus.mail import render, tokens, transport
from nexus.mail.models import OutboundEmail
from nexus.mail.services import SEND

log = get_logger(__name__)


# Backoff over about an hour and a half: a relay that is down for a while
# (a deploy, an outage) still gets every message once it is back.
@job_type(SEND, priority="high", timeout=120, retries=8, retry_intervals=(10, 30, 60, 300, 900))
def send(message_id: str) -> dict[str, Any]:
    """Send the message unless it was sent; mark it sent once the relay accepted it."""
    session = get_session()
    # Read, then let go of the database: no transaction stays open while the
    # relay is talking (it may take seconds, or time out).
    with transaction(session):
        row = session.scalar(
            select(OutboundEmail)
            .where(OutboundEmail.id == uuid.UUID(message_id))
            .execution_options(populate_existing=True)
        )
        if row is None:
            return {"status": "gone"}  # its user was deleted meanwhile
        if row.sent_at is not None:
            return {"status": "already_sent"}
        kind, message = row.kind, _message(row)
    try:
        transport.send(message, current_settings())
    except Exception:
        metrics.MAILS_FAILED.labels(kind=kind).inc()
        raise  # the job's retries and backoff take it from here
    # The window where a crash sends it twice: accepted by the relay, not yet
    # marked here. The Message-ID is the same both times.
    with transaction(session):
        session.execute(
            update(OutboundEmail)
            .where(OutboundEmail.id == uuid.UUID(message_id))
            .values(sent_at=datetime.now(UTC))
        )
    metrics.MAILS_SENT.labels(kind=kind).inc()
    log.info("mail.sent", message_id=message_id, kind=kind)
    return {"status": "sent", "kind": kind}


def _message(row: OutboundEmail) -> EmailMessage:
    settings = current_settings()
    context: dict[str, Any] = {"public_url": settings.public_url.rstrip("/")}
    if row.token_id is not None:
        secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
        token = tokens.token_for(row.token_id, secret)
        query = urlencode({"token": token})
        context["link"] = f"{context['public_url']}{row.link_path or '/'}?{query}"
    rendered = render.render(row.kind, context)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = settings.mail_from
    message["To"] = row.to_address
    message["Date"] = formatdate(localtime=False)
    # Stable across retries: a receiving server can tell a duplicate.
    domain = settings.mail_from.rpartition("@")[2].strip(" >") or "nexus.invalid"
    message["Message-ID"] = f"<{row.id}@{domain}>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
