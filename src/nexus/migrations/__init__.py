"""Migrations: Alembic inside the package, driven from code, not from an .ini file.

Owns the Alembic configuration (script location, numbered revision ids) and
the operations the ``db`` commands and the tests run: ``upgrade``,
``downgrade``, ``current``, ``new_revision``. The database URL is passed in,
so the same functions migrate the dev database, a test template or prod.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine
from sqlalchemy.pool import NullPool

from nexus.domains import DOMAINS
from nexus.infrastructure.database import Base

MIGRATIONS_DIR = Path(__file__).parent
target_metadata: MetaData = Base.metadata


@functools.cache
def managed_tables() -> frozenset[str]:
    """The tables of the models the listed domains declare."""
    modules = {module.__name__ for domain in DOMAINS for module in domain.models}
    return frozenset(
        mapper.local_table.name  # type: ignore[attr-defined]
        for mapper in Base.registry.mappers
        if mapper.class_.__module__ in modules
    )


def include_object(
    _obj: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any
) -> bool:
    """Autogenerate compares the domains' tables, and whatever the database holds."""
    if type_ == "table" and not reflected:
        return name in managed_tables()
    return True


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    # Passed as an attribute, not an option: an .ini value would need every
    # "%" in a password escaped.
    config.attributes["database_url"] = database_url
    if importlib.util.find_spec("ruff") is not None:
        # A new revision comes out as `make lint` wants it (dev venvs only:
        # the image has no ruff, and never writes revisions).
        config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
        for name, options in (("ruff_fix", "check --fix --quiet"), ("ruff_format", "format")):
            config.set_section_option("post_write_hooks", f"{name}.type", "module")
            config.set_section_option("post_write_hooks", f"{name}.module", "ruff")
            config.set_section_option(
                "post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME"
            )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at, or ``None`` before the first migration."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            revision: str | None = MigrationContext.configure(connection).get_current_revision()
            return revision
    finally:
        engine.dispose()


def drift(database_url: str) -> list[Any]:
    """What ``db revision --autogenerate`` would propose against this database: [] when
    the models and the migrations agree (Alembic's ``compare_metadata``)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "include_object": include_object},
            )
            return list(compare_metadata(context, target_metadata))
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision shipped with the code."""
    revision = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    if revision is None:  # pragma: no cover - the baseline always exists
        raise RuntimeError("no migrations found")
    return revision


def revisions() -> frozenset[str]:
    """Every revision shipped with the code."""
    scripts = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(script.revision for script in scripts.walk_revisions())


def next_revision_id() -> str:
    """``0002`` after ``0001``: numbered ids sort the files in the order they apply."""
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS_DIR / "versions").glob("*.py")
        if (match := re.match(r"^(\d{4})_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(database_url: str, message: str, *, autogenerate: bool = False) -> str:
    script = command.revision(
        alembic_config(database_url),
        message=message,
        autogenerate=autogenerate,
        rev_id=next_revision_id(),
    )
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise RuntimeError("alembic did not create exactly one revision")
    return str(script.path)
