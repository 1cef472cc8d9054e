"""Accounts as a domain: its routes, job, command, tables, error codes and JWT setup."""

from __future__ import annotations

from flask import Flask

from nexus.accounts import auth, cli, jobs, models, routes
from nexus.accounts.errors import AuthUnavailable, LastAdmin
from nexus.api.errors import ErrorCode
from nexus.domain import Domain

E_LAST_ADMIN_FORBIDDEN = ErrorCode(
    "E_LAST_ADMIN_FORBIDDEN",
    403,
    "Last admin is protected",
    "The last active admin cannot be demoted, deactivated or deleted.",
)
E_AUTH_UNAVAILABLE = ErrorCode(
    "E_AUTH_UNAVAILABLE",
    503,
    "Authentication unavailable",
    "Credentials cannot be checked right now; retry later.",
)


def _init_app(app: Flask) -> None:
    auth.init_app(app, app.extensions["nexus.settings"])


domain = Domain(
    name="accounts",
    blueprints=((routes.bp, "/auth"), (routes.admin_bp, "/admin")),
    job_modules=(jobs,),
    commands=(cli.create_admin_command,),
    models=(models,),
    codes=(E_LAST_ADMIN_FORBIDDEN, E_AUTH_UNAVAILABLE),
    errors={LastAdmin: E_LAST_ADMIN_FORBIDDEN, AuthUnavailable: E_AUTH_UNAVAILABLE},
    init_app=_init_app,
)
