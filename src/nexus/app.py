"""The application factory: a table of contents of what a Nexus app is made of.

``create_app()`` loads and validates the settings (failing fast), configures
logging before Flask exists, then wires extensions, request hooks,
blueprints, error handlers and commands, in that order. It is the only module
that imports routes.
"""

from __future__ import annotations

import importlib
import sys

from flask import Flask

from nexus.accounts import auth
from nexus.accounts import routes as account_routes
from nexus.api import errors, health, problems, request_context
from nexus.audit import routes as audit_routes
from nexus.config import ConfigError, Settings, load_settings
from nexus.infrastructure import queue
from nexus.infrastructure import redis as redis_infra
from nexus.infrastructure.database import Database, create_db_engine
from nexus.infrastructure.logging import configure_logging
from nexus.jobs import routes as job_routes

# Every module that declares job types: importing one registers its jobs
# (and their schedules) in this process, web and worker alike.
JOB_MODULES = ("nexus.jobs.canary", "nexus.jobs.maintenance", "nexus.accounts.jobs")

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> Flask:
    """Build a Nexus app from ``settings`` (default: the environment)."""
    settings = settings or load_settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        DEBUG=settings.debug,
    )
    # Keep keys in the order views write them: {"status", "db", "redis"}.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["nexus.settings"] = settings
    register_extensions(app, settings)
    register_request_hooks(app)
    register_blueprints(app)
    register_jobs()
    register_errorhandlers(app)
    register_commands(app)
    return app


def create_app_or_exit() -> Flask:
    """``create_app()`` for entry points: a bad configuration exits with its message.

    ``flask --app nexus`` and gunicorn (``nexus.wsgi``) use this, so an operator
    sees the list of bad variables rather than a traceback.
    """
    try:
        return create_app()
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None


def register_extensions(app: Flask, settings: Settings) -> None:
    database = Database(create_db_engine(settings))
    database.init_app(app)
    redis = redis_infra.create_redis(settings)
    redis_infra.init_app(app, redis)
    queue.init_app(app, queue.create_queues(redis, settings))
    auth.init_app(app, settings)
    app.extensions[health.EXTENSION_KEY] = health.create_health_check(settings, redis)


def register_request_hooks(app: Flask) -> None:
    request_context.init_app(app)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(problems.bp, url_prefix=API_PREFIX)
    app.register_blueprint(account_routes.bp, url_prefix=f"{API_PREFIX}/auth")
    app.register_blueprint(account_routes.admin_bp, url_prefix=f"{API_PREFIX}/admin")
    app.register_blueprint(audit_routes.bp, url_prefix=f"{API_PREFIX}/admin")
    app.register_blueprint(job_routes.bp, url_prefix=API_PREFIX)
    app.register_blueprint(job_routes.admin_bp, url_prefix=f"{API_PREFIX}/admin")


def register_jobs() -> None:
    for module in JOB_MODULES:
        importlib.import_module(module)


def register_errorhandlers(app: Flask) -> None:
    errors.register_error_handlers(app)


def register_commands(app: Flask) -> None:
    from nexus import cli  # noqa: PLC0415 - commands import jobs, which need the app late

    cli.register(app)
