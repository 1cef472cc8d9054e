"""Accounts' errors: the exceptions its services raise, and the codes of its own.

Each exception subclasses a general domain error (``nexus.errors``), which
fixes its HTTP status; ``LastAdmin`` and ``AuthUnavailable`` have codes of
their own (below), mapped in ``accounts.domain`` and named in the routes'
contracts.
"""

from __future__ import annotations

from nexus.api.errors import ErrorCode
from nexus.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unavailable,
)

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
E_TOKEN_INVALID = ErrorCode(
    "E_TOKEN_INVALID",
    400,
    "Link not valid",
    "The link's token is unknown, was used already, or has expired; ask for a new link.",
)
E_EMAIL_UNVERIFIED = ErrorCode(
    "E_EMAIL_UNVERIFIED",
    403,
    "E-mail address not verified",
    "This service signs in only verified addresses: follow the link mailed at registration.",
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


class TokenInvalid(InvalidInput):
    """A mailed link's token is unknown, used or expired."""


class EmailUnverified(Forbidden):
    """NEXUS_REQUIRE_VERIFIED_EMAIL, and the account's address is not verified."""
