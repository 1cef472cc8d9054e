"""Libraries and media as a domain: routes, tables, the ingestion job, error codes, settings.

Its modules: ``models`` (the tables), ``schemas`` (request and response
shapes), ``services`` (libraries and members), ``media`` (uploads, reading,
ingestion), ``ingest`` (sanitizing and splitting, no database), ``search``,
``jobs`` (the ingestion job), ``routes``, ``settings`` and ``errors``.
"""

from __future__ import annotations

from nexus.accounts.errors import E_LAST_ADMIN_FORBIDDEN
from nexus.accounts.events import UserCreated
from nexus.api.errors import ErrorCode
from nexus.domain import Domain
from nexus.libraries import jobs, models, routes, services
from nexus.libraries.errors import (
    E_DEFAULT_LIBRARY_FORBIDDEN,
    E_LIBRARY_NOT_FOUND,
    E_MEDIA_NOT_FOUND,
    AccountNotFound,
    DefaultLibraryForbidden,
    LastLibraryAdmin,
    LibraryNotFound,
    MediaNotFound,
)
from nexus.libraries.settings import LibrariesSettings

domain = Domain(
    name="libraries",
    blueprints=((routes.bp, ""),),
    job_modules=(jobs,),
    models=(models,),
    codes=(E_LIBRARY_NOT_FOUND, E_MEDIA_NOT_FOUND, E_DEFAULT_LIBRARY_FORBIDDEN),
    settings=LibrariesSettings,
    errors={
        LibraryNotFound: E_LIBRARY_NOT_FOUND,
        MediaNotFound: E_MEDIA_NOT_FOUND,
        DefaultLibraryForbidden: E_DEFAULT_LIBRARY_FORBIDDEN,
        LastLibraryAdmin: E_LAST_ADMIN_FORBIDDEN,
        AccountNotFound: ErrorCode.E_NOT_FOUND,
    },
    subscribers={UserCreated: [services.create_default_library]},
)
