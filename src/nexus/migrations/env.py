"""Alembic's environment: connect with the URL Nexus passes in and migrate online.

The tables Alembic manages are those of the models each domain in
``nexus.domains`` declares; autogenerate compares exactly those (a model
imported from anywhere else, a test's say, is not the schema's business).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from nexus.migrations import include_object, target_metadata


def run_migrations_online() -> None:
    database_url = context.config.attributes["database_url"]
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            include_object=include_object,
            # One transaction for the whole upgrade: a failing migration leaves
            # the schema as it was (PostgreSQL has transactional DDL).
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - Nexus always migrates online
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
