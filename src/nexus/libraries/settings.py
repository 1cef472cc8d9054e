"""Libraries' own settings: how large an upload may be."""

from __future__ import annotations

from pydantic import Field

from nexus.domain import DomainSettings

MIB = 1024 * 1024


class LibrariesSettings(DomainSettings):
    """``NEXUS_MAX_UPLOAD_BYTES``: the body limit of the media upload route only.

    Every other route keeps ``NEXUS_MAX_BODY_BYTES``.
    """

    max_upload_bytes: int = Field(default=10 * MIB, ge=1024)
