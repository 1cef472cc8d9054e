"""The core commands: ``flask --app nexus db ...`` and ``flask --app nexus openapi``.

Each ``db`` command is a thin shell over ``nexus.migrations`` (Alembic), run
as the owner role (``MIGRATION_DATABASE_URL``, else ``DATABASE_URL``), except
``db wait``, which only reads the revision, as the app (a pod's init step);
``openapi`` writes the API document for client generators. Domains bring
their own commands through their ``Domain``.
"""

from __future__ import annotations

import json
import time

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from nexus import migrations
from nexus.api.openapi import DOCUMENT_KEY
from nexus.config import current_settings


@click.group("db")
def db_group() -> None:
    """Apply and inspect database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    migrations.upgrade(current_settings().migrations_url, revision)
    click.echo(f"database at {migrations.current(current_settings().migrations_url) or 'base'}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (e.g. -1, or base)."""
    migrations.downgrade(current_settings().migrations_url, revision)
    click.echo(f"database at {migrations.current(current_settings().migrations_url) or 'base'}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revision the database is at."""
    click.echo(
        migrations.current(current_settings().migrations_url) or "base (no migrations applied)"
    )


@db_group.command("wait")
@click.option(
    "--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0), help="Seconds."
)
@with_appcontext
def db_wait(timeout: float) -> None:
    """Wait until the database has this code's migrations (a pod's init step).

    Exits 0 once the schema is at this code's newest revision, or at one this
    code does not know (a newer release migrated it first); else exits 1 after
    TIMEOUT seconds, saying where the database is. Connects as the app
    (``DATABASE_URL``), which may read the revision but never migrates.
    """
    wanted = migrations.head()
    known = migrations.revisions()
    deadline = time.monotonic() + timeout
    while True:
        try:
            at: str | None = migrations.current(current_settings().database_url)
            state = f"at {at or 'base'}"
        except SQLAlchemyError as exc:
            at, state = None, f"unreachable ({type(exc).__name__})"
        if at == wanted or (at is not None and at not in known):
            click.echo(f"database at {at}")
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(f"database {state}, not {wanted}, after {timeout:g} s")
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option("--autogenerate", is_flag=True, help="Diff the models against the database.")
@with_appcontext
def db_revision(message: str, autogenerate: bool) -> None:
    """Create the next numbered migration file (0002_..., 0003_...)."""
    path = migrations.new_revision(
        current_settings().migrations_url, message, autogenerate=autogenerate
    )
    click.echo(f"created {path}")


@click.command("openapi")
@click.option(
    "--output",
    "-o",
    default="-",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="Where to write it (default: standard output).",
)
@with_appcontext
def openapi_command(output: str) -> None:
    """Write the OpenAPI document (what /openapi.json serves) for client generators."""
    with click.open_file(output, "w") as target:
        target.write(json.dumps(current_app.extensions[DOCUMENT_KEY], indent=2) + "\n")
