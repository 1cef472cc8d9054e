"""Accounts: compare addresses by a key made in Python (NFKC, casefold, IDNA domain).

``users.email_key`` replaces the unique index on ``lower(email)``, which
under the C locale folds only ASCII (``Émile@x`` and ``émile@x`` were two
accounts). Existing rows get their key here. If two existing accounts have
the same key, the upgrade stops before changing anything, names them, and
says what to do.

The key function is copied here, not imported: a migration must mean the
same thing for ever, whatever ``accounts.emails`` becomes.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import idna
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(address: str) -> str:
    text = unicodedata.normalize("NFKC", address.strip())
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return text.casefold()
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        ascii_domain = domain.casefold()
    return f"{local.casefold()}@{ascii_domain.lower()}"


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, email FROM users ORDER BY created_at")).all()
    by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_key[_key(row.email)].append((str(row.id), row.email))
    clashes = {key: users for key, users in by_key.items() if len(users) > 1}
    if clashes:
        listing = "\n".join(
            f"  {key}: " + ", ".join(f"{email} (id {user_id})" for user_id, email in users)
            for key, users in sorted(clashes.items())
        )
        raise RuntimeError(
            "Migration 0005 stopped before changing anything: these accounts are one address "
            f"written differently, and would share a key:\n{listing}\n"
            "Keep one account per line (delete the others, or change their e-mail so they no "
            "longer clash), then run `flask --app nexus db upgrade` again."
        )
    op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
    for key, users in by_key.items():
        connection.execute(
            sa.text("UPDATE users SET email_key = :key WHERE id = CAST(:id AS uuid)"),
            {"key": key, "id": users[0][0]},
        )
    op.alter_column("users", "email_key", nullable=False)
    op.create_unique_constraint("uq_users_email_key", "users", ["email_key"])
    op.drop_index("uq_users_email_lower", table_name="users")


def downgrade() -> None:
    op.execute("CREATE UNIQUE INDEX uq_users_email_lower ON users (lower(email))")
    op.drop_constraint("uq_users_email_key", "users", type_="unique")
    op.drop_column("users", "email_key")
