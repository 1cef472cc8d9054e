"""The tables of libraries and media: the nexus-pr01 schema (§10.3), and what a service adds.

``libraries``, ``memberships``, ``media``, ``fragments`` and ``library_media``
are the spec's, column for column, constraint for constraint. Beside them:
``media.processing_error`` and ``media.created_by``; ``media_originals``, the
uploaded bytes with their content type, size and SHA-256, in a table of their
own so that reading a media row never drags its file along; and a full-text
index over ``fragments.canonical_text``. Every constraint and index is
declared here as migration 0006 creates it, so the drift check holds.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from nexus.infrastructure.database import Base

# The text search configuration of the full-text index; queries must use
# the same one for PostgreSQL to use the index.
SEARCH_CONFIG = "english"
NAME_MAX = 100
DEFAULT_LIBRARY_NAME = "My library"


class LibraryRole(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class MediaKind(enum.StrEnum):
    WEB_ARTICLE = "web_article"
    EPUB = "epub"
    PDF = "pdf"
    VIDEO = "video"
    PODCAST_EPISODE = "podcast_episode"


class ProcessingStatus(enum.StrEnum):
    PENDING = "pending"
    EXTRACTING = "extracting"
    READY_FOR_READING = "ready_for_reading"
    EMBEDDING = "embedding"
    READY = "ready"
    FAILED = "failed"


class Library(Base):
    __tablename__ = "libraries"
    __table_args__ = (
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
        # At most one default library per user (the spec's partial index).
        Index(
            "uix_libraries_one_default_per_user",
            "owner_user_id",
            unique=True,
            postgresql_where=text("is_default = true"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    owner_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        PrimaryKeyConstraint("library_id", "user_id"),
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        # "The libraries I belong to": the viewer's every query starts here.
        Index("ix_memberships_user_id", "user_id"),
    )

    library_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("libraries.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Media(Base):
    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('web_article', 'epub', 'pdf', 'video', 'podcast_episode')", name="kind"
        ),
        CheckConstraint(
            "processing_status IN ('pending', 'extracting', 'ready_for_reading', 'embedding',"
            " 'ready', 'failed')",
            name="processing_status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    kind: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    canonical_source_url: Mapped[str | None] = mapped_column(Text)
    processing_status: Mapped[str] = mapped_column(Text, server_default="pending")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Beyond the spec: why ingestion failed, and who uploaded it.
    processing_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class MediaOriginal(Base):
    """The uploaded file, as it came: kept for reprocessing, apart from the media row."""

    __tablename__ = "media_originals"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size"),
        CheckConstraint("char_length(sha256) = 64", name="sha256_length"),
        # "Has this library seen this content?" is asked at every upload.
        Index("ix_media_originals_sha256", "sha256"),
    )

    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), primary_key=True
    )
    content_type: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Fragment(Base):
    __tablename__ = "fragments"
    __table_args__ = (
        UniqueConstraint("media_id", "idx"),
        Index(
            "ix_fragments_search",
            text(f"to_tsvector('{SEARCH_CONFIG}', canonical_text)"),
            postgresql_using="gin",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )
    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    idx: Mapped[int]
    canonical_text: Mapped[str] = mapped_column(Text)
    html_sanitized: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LibraryMedia(Base):
    __tablename__ = "library_media"
    __table_args__ = (
        PrimaryKeyConstraint("library_id", "media_id"),
        # "Which libraries hold this media?": every read of a media checks it.
        Index("ix_library_media_media_id", "media_id"),
    )

    library_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("libraries.id", ondelete="CASCADE"))
    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
