"""``flask --app nexus create-admin``: the first admin, or a promotion, from a shell."""

from __future__ import annotations

import os

import click
from email_validator import EmailNotValidError, validate_email
from flask.cli import with_appcontext

from nexus.accounts import services as account_services
from nexus.accounts.auth import family_cache, password_hasher
from nexus.audit.services import AuditContext
from nexus.errors import DomainError
from nexus.infrastructure.database import get_session, transaction


@click.command("create-admin")
@click.argument("email")
@with_appcontext
def create_admin_command(email: str) -> None:
    """Create EMAIL as an admin, or promote the existing account (idempotent).

    The password comes from NEXUS_ADMIN_PASSWORD or a prompt, never an argument
    (arguments end up in shell history and process lists).
    """
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    password = os.environ.get("NEXUS_ADMIN_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    session = get_session()
    try:
        with transaction(session):
            user, created = account_services.ensure_admin(
                session=session,
                hasher=password_hasher(),
                email=email,
                password=password,
                cache=family_cache(),
                context=AuditContext(actor_role="cli"),
            )
    except DomainError as exc:
        raise click.ClickException(exc.reasons()) from None
    click.echo(f"{'created' if created else 'admin'} {user.email} ({user.id})")
