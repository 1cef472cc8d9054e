"""Baseline: the shared trigger function that keeps ``updated_at`` honest.

No domain tables yet (users arrive with accounts). Tables with an
``updated_at`` column attach this function with::

    CREATE TRIGGER <table>_set_updated_at BEFORE UPDATE ON <table>
    FOR EACH ROW EXECUTE FUNCTION nexus_set_updated_at();

so the column changes on every UPDATE, whoever issues it. Runs on PostgreSQL
13 and later without extensions: ``gen_random_uuid()`` is built in since 13.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION nexus_set_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := now();
            RETURN NEW;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION nexus_set_updated_at()")
