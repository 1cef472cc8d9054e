"""Domain errors: what a service raises when it cannot do what it was asked.

Services speak in these, never in HTTP: a service imports nothing from
``flask`` or ``nexus.api``. The HTTP layer (``nexus.api.errors``) maps each
class to a problem ``code`` in one place, walking the class's bases, so a
domain's ``UserNotFound(NotFound)`` is a 404 without further ado; a domain
maps a class of its own to a code of its own in its ``Domain``. Commands
print ``detail`` (and the field messages). Imports nothing from Nexus.
"""

from __future__ import annotations


class DomainError(Exception):
    """The request cannot be honoured, for a reason the caller can act on.

    ``errors`` lists field problems as ``{"field", "message"}``;
    ``retry_after`` (seconds) says when trying again may succeed.
    """

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.retry_after = retry_after

    def reasons(self) -> str:
        """One line for a command's output: the field messages, or the detail."""
        return "; ".join(error["message"] for error in self.errors or []) or self.detail


class InvalidInput(DomainError):
    """The values are well formed but not acceptable (400)."""


class Unauthenticated(DomainError):
    """Credentials are missing, wrong, expired or revoked (401)."""


class Forbidden(DomainError):
    """The caller may not do this (403)."""


class NotFound(DomainError):
    """No such thing, or not one the caller may see (404)."""


class Conflict(DomainError):
    """The current state forbids it: a duplicate, an ended job (409)."""


class Unavailable(DomainError):
    """A dependency cannot answer right now; retrying later may work (503)."""
