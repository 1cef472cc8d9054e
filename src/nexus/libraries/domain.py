"""Libraries and media as a domain: routes, tables, error codes, every user's default library."""

from __future__ import annotations

from nexus.accounts.errors import E_LAST_ADMIN_FORBIDDEN
from nexus.accounts.events import UserCreated
from nexus.api.errors import ErrorCode
from nexus.domain import Domain
from nexus.libraries import models, routes, services
from nexus.libraries.errors import (
    E_DEFAULT_LIBRARY_FORBIDDEN,
    E_LIBRARY_NOT_FOUND,
    AccountNotFound,
    DefaultLibraryForbidden,
    LastLibraryAdmin,
    LibraryNotFound,
)

domain = Domain(
    name="libraries",
    blueprints=((routes.bp, ""),),
    models=(models,),
    codes=(E_LIBRARY_NOT_FOUND, E_DEFAULT_LIBRARY_FORBIDDEN),
    errors={
        LibraryNotFound: E_LIBRARY_NOT_FOUND,
        DefaultLibraryForbidden: E_DEFAULT_LIBRARY_FORBIDDEN,
        LastLibraryAdmin: E_LAST_ADMIN_FORBIDDEN,
        AccountNotFound: ErrorCode.E_NOT_FOUND,
    },
    subscribers={UserCreated: [services.create_default_library]},
)
