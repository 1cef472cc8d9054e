"""Accounts' errors: the exceptions its services raise, and the codes of its own.

Each exception subclasses a general domain error (``nexus.errors``), which
fixes its HTTP status; ``LastAdmin`` and ``AuthUnavailable`` have codes of
their own (below), mapped in ``accounts.domain`` and named in the routes'
contracts.
"""

from __future__ import annotations

from nexus.api.errors import ErrorCode
from nexus.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unavailable

E_LAST_ADMIN_FORBIDDEN = ErrorCode(
    "E_LAST_ADMIN_FORBIDDEN",
    403,
    "Last admin is protected",
    "The last admin (of the service, or of a library) cannot be demoted, removed or deactivated.",
)
E_AUTH_UNAVAILABLE = ErrorCode(
    "E_AUTH_UNAVAILABLE",
    503,
    "Authentication unavailable",
    "Credentials cannot be checked right now; retry later.",
)


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
