"""Accounts' periodic jobs: expired token families are purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nexus.accounts import tokens
from nexus.infrastructure.database import get_session
from nexus.jobs.registry import job_type

# An expired family's tokens are refused by their own expiry already; the hour
# covers clocks that disagree by a little.
EXPIRY_MARGIN = timedelta(hours=1)


@job_type("accounts.purge_token_families", priority="low", timeout=600, schedule="17 * * * *")
def purge_token_families() -> dict[str, int]:
    """Delete token families (revoked or not) whose refresh token has expired."""
    deleted = tokens.purge_expired(session=get_session(), before=datetime.now(UTC) - EXPIRY_MARGIN)
    return {"deleted": deleted}
