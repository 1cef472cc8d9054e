"""Alembic's environment: connect with the URL Nexus passes in and migrate online.

Imports every module that defines models so ``--autogenerate`` sees them;
add a domain's ``models`` import below when the domain gets tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

# Every module that defines models, so autogenerate compares them all.
from nexus.accounts import models as _accounts_models  # noqa: F401
from nexus.audit import models as _audit_models  # noqa: F401
from nexus.infrastructure.database import Base
from nexus.jobs import models as _jobs_models  # noqa: F401

target_metadata = Base.metadata


def run_migrations_online() -> None:
    database_url = context.config.attributes["database_url"]
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
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
