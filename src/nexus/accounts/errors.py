"""Accounts' errors: the exceptions its services raise.

Each subclasses a general domain error (``nexus.errors``), which fixes its
HTTP status; ``LastAdmin`` and ``AuthUnavailable`` have codes of their own,
mapped in ``accounts.domain``.
"""

from __future__ import annotations

from nexus.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unavailable


class RegistrationClosed(Forbidden):
    """``NEXUS_REGISTRATION_MODE=closed``."""


class EmailTaken(Conflict):
    """An account with this address exists."""


class UserNotFound(NotFound):
    """No such user."""


class LastAdmin(Forbidden):
    """The change would leave no active admin."""


class SessionEnded(Unauthenticated):
    """The login (token family) was revoked or has expired."""


class AuthUnavailable(Unavailable):
    """Credentials cannot be checked right now (hashing slots full, PostgreSQL down)."""
