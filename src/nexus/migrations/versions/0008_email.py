"""E-mail: verified addresses, mailed tokens (stored as hashes), the outbox.

Revision ID: 0008
Revises: 0007

``users.email_verified_at``; ``email_tokens`` (verification and password
reset links: the SHA-256 of each token, its purpose, the address it proves,
its expiry and use); ``outbound_emails`` (one row per message, sent by the
``mail.send`` job, which takes only the row's id).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.create_table(
        "email_tokens",
        sa.Column("id", UUID(as_uuid=True), primary_key=True,
                  server_default=sa.text("gen_random_uuid()")),
        sa.Column("user_id", UUID(as_uuid=True),
                  sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("token_sha256"),
        sa.CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose"),
    )  # fmt: skip
    op.create_index("ix_email_tokens_user_id", "email_tokens", ["user_id"])
    op.create_table(
        "outbound_emails",
        sa.Column("id", UUID(as_uuid=True), primary_key=True,
                  server_default=sa.text("gen_random_uuid()")),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("to_address", sa.Text(), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE")),
        sa.Column("token_id", UUID(as_uuid=True)),
        sa.Column("link_path", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )  # fmt: skip
    op.create_index("ix_outbound_emails_user_id", "outbound_emails", ["user_id"])


def downgrade() -> None:
    op.drop_table("outbound_emails")
    op.drop_table("email_tokens")
    op.drop_column("users", "email_verified_at")
