"""Libraries' errors: what its services raise, and the codes of its own.

An outsider is told a library or media does not exist (404), the same as
for an id that does not: whether it exists is not the outsider's business.
"""

from __future__ import annotations

from nexus.api.errors import ErrorCode
from nexus.errors import Conflict, Forbidden, NotFound

E_LIBRARY_NOT_FOUND = ErrorCode(
    "E_LIBRARY_NOT_FOUND",
    404,
    "Library not found",
    "No such library, or the caller is not one of its members.",
)
E_DEFAULT_LIBRARY_FORBIDDEN = ErrorCode(
    "E_DEFAULT_LIBRARY_FORBIDDEN",
    403,
    "Default library is protected",
    "A user's default library can be neither renamed nor deleted.",
)

E_MEDIA_NOT_FOUND = ErrorCode(
    "E_MEDIA_NOT_FOUND",
    404,
    "Media not found",
    "No such media, or none of the caller's libraries holds it.",
)


class LibraryNotFound(NotFound):
    """No such library for this viewer."""


class DefaultLibraryForbidden(Forbidden):
    """The default library cannot be renamed or deleted."""


class NotLibraryAdmin(Forbidden):
    """Only the library's admins may do this."""


class LastLibraryAdmin(Forbidden):
    """The change would leave the library without an admin."""


class AccountNotFound(NotFound):
    """No account has this e-mail address."""


class AlreadyMember(Conflict):
    """The user is a member of the library already."""


class MediaNotFound(NotFound):
    """No such media for this viewer (or not in the library named)."""
