"""Accounts as a domain: its routes, job, command, tables, error codes and JWT setup."""

from __future__ import annotations

from flask import Flask

from nexus.accounts import auth, cli, jobs, models, routes
from nexus.accounts.errors import (
    E_AUTH_UNAVAILABLE,
    E_EMAIL_UNVERIFIED,
    E_LAST_ADMIN_FORBIDDEN,
    E_TOKEN_INVALID,
    AuthUnavailable,
    EmailUnverified,
    LastAdmin,
    TokenInvalid,
)
from nexus.domain import Domain


def _init_app(app: Flask) -> None:
    auth.init_app(app, app.extensions["nexus.settings"])


domain = Domain(
    name="accounts",
    blueprints=((routes.bp, "/auth"), (routes.admin_bp, "/admin")),
    job_modules=(jobs,),
    commands=(cli.create_admin_command,),
    models=(models,),
    codes=(E_LAST_ADMIN_FORBIDDEN, E_AUTH_UNAVAILABLE, E_TOKEN_INVALID, E_EMAIL_UNVERIFIED),
    errors={
        LastAdmin: E_LAST_ADMIN_FORBIDDEN,
        AuthUnavailable: E_AUTH_UNAVAILABLE,
        TokenInvalid: E_TOKEN_INVALID,
        EmailUnverified: E_EMAIL_UNVERIFIED,
    },
    init_app=_init_app,
)
