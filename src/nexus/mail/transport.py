"""Handing a message to the SMTP relay: STARTTLS, implicit TLS or plain (loopback); a login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from nexus.config import Settings


class MailNotConfiguredError(RuntimeError):
    """NEXUS_SMTP_HOST is not set."""


def send(message: EmailMessage, settings: Settings) -> None:
    """Deliver ``message`` to the relay; any failure raises (the job retries)."""
    if not settings.smtp_host:
        raise MailNotConfiguredError("NEXUS_SMTP_HOST is not set; no mail can be sent")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
    with smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)
