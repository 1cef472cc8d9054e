"""Tables of the accounts domain: users, token families, invites (0002), mailed tokens (0008).

Every constraint and index is declared here, so ``--autogenerate`` against
head proposes nothing. ``users.updated_at`` is kept by the baseline's
``nexus_set_updated_at()`` trigger (migrations 0001, 0002).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column, validates

from nexus.accounts import emails
from nexus.infrastructure.database import Base


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        CheckConstraint("char_length(email) BETWEEN 3 AND 320", name="email_length"),
        # One account per address however it is written (accounts.emails.key).
        UniqueConstraint("email_key"),
        Index("ix_users_role_active", "role", "is_active"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    email: Mapped[str] = mapped_column(Text)  # as given, for display
    email_key: Mapped[str] = mapped_column(Text)  # as compared: set with email, below
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, server_default=Role.MEMBER.value)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_login_at: Mapped[datetime | None]
    # When the address was proven (a mailed link followed); migration 0008.
    email_verified_at: Mapped[datetime | None]

    @validates("email")
    def _keep_email_key(self, _name: str, email: str) -> str:
        # Whoever sets the address (a service, a fixture, an admin tool) sets its key.
        self.email_key = emails.key(email)
        return email


class TokenFamily(Base):
    """One login: its access and refresh tokens carry this id as ``fam``."""

    __tablename__ = "token_families"
    __table_args__ = (
        Index("ix_token_families_user_id", "user_id"),
        Index("ix_token_families_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    refresh_jti: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class Invite(Base):
    """Only the SHA-256 of a code is stored; the code is shown once."""

    __tablename__ = "invites"
    __table_args__ = (UniqueConstraint("code_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    code_sha256: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password


class EmailToken(Base):
    """A mailed link's token (migration 0008): only its SHA-256 is stored.

    The token itself is derived from ``id`` and the secret key
    (``nexus.mail.tokens``), so the sending job can rebuild the link. For
    ``verify_email``, ``email`` is the address being proven: the account's
    own, or the new one it asked to move to.
    """

    __tablename__ = "email_tokens"
    __table_args__ = (
        UniqueConstraint("token_sha256"),
        CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose"),
        Index("ix_email_tokens_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE")
    )
    purpose: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
