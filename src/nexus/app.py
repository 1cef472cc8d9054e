"""The application factory: a table of contents of what a Nexus app is made of.

``create_app()`` loads and validates the settings (the app's and every
domain's, failing fast), configures logging before Flask exists, then wires
extensions, request hooks, each domain (``nexus.domains``: its blueprints,
jobs, commands, error codes, event subscribers and setup), error handlers,
the core commands, the protections (proxies, security headers, CORS,
rate limits) and tracing, in that order; last, the OpenAPI document of all their routes
(``/openapi.json``, ``/docs``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flask import Flask

from nexus import cli
from nexus.api import (
    errors,
    health,
    metrics,
    openapi,
    problems,
    ratelimit,
    request_context,
    security,
)
from nexus.api.application import NexusFlask
from nexus.config import ConfigError, Settings, load_settings
from nexus.domain import SETTINGS_KEY, Domain, load_domain_settings, subscribers_of
from nexus.domains import DOMAINS
from nexus.infrastructure import events, queue, tracing
from nexus.infrastructure import metrics as metrics_infra
from nexus.infrastructure import redis as redis_infra
from nexus.infrastructure.database import Database, create_db_engine
from nexus.infrastructure.logging import configure_logging

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, domains: Sequence[Domain] = DOMAINS) -> Flask:
    """Build a Nexus app from ``settings`` (default: the environment) and ``domains``."""
    settings = settings or load_settings()
    configure_logging(settings)
    app = NexusFlask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        DEBUG=settings.debug,
    )
    # Keep keys in the order views write them: {"status", "db", "redis"}.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["nexus.settings"] = settings
    app.extensions[SETTINGS_KEY] = load_domain_settings(domains, settings.env)
    register_extensions(app, settings)
    register_request_hooks(app, settings)
    register_blueprints(app)
    register_domains(app, domains)
    register_errorhandlers(app, domains)
    register_commands(app)
    register_protection(app, settings)
    register_observability(app)
    register_api_document(app, domains)
    return app


def create_app_or_exit() -> Flask:
    """``create_app()`` for entry points: a bad configuration exits with its message.

    ``flask --app nexus``, gunicorn (``nexus.wsgi``) and ``rq worker``
    (``nexus.rqworker``) use this, so an operator sees the list of bad
    variables rather than a traceback.
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
    app.extensions[health.EXTENSION_KEY] = health.create_health_check(settings, redis)
    quick = redis_infra.create_redis(settings, client_name="nexus-metrics", timeout=0.5)
    metrics_infra.add_collector(app, metrics_infra.RedisUp(quick))


def register_request_hooks(app: Flask, settings: Settings) -> None:
    request_context.init_app(app, security.ResponseHeaders(settings))


def register_blueprints(app: Flask) -> None:
    """The ops endpoints (health, metrics) and the error catalogue; domains bring the rest."""
    app.register_blueprint(health.bp)
    app.register_blueprint(problems.bp, url_prefix=API_PREFIX)
    metrics.init_app(app)


def register_domains(app: Flask, domains: Sequence[Domain]) -> None:
    # Job modules register their job types when imported, which importing the
    # domain has done; the list in each Domain says which they are.
    for domain in domains:
        if domain.init_app is not None:
            domain.init_app(app)
        for blueprint, prefix in domain.blueprints:
            app.register_blueprint(blueprint, url_prefix=f"{API_PREFIX}{prefix}")
        for command in domain.commands:
            app.cli.add_command(command)
    events.init_app(app, subscribers_of(domains))
    app.extensions["nexus.domains"] = tuple(domains)


def register_errorhandlers(app: Flask, domains: Sequence[Domain]) -> None:
    codes = [code for domain in domains for code in domain.codes]
    error_codes = {cls: code for domain in domains for cls, code in domain.errors.items()}
    errors.init_app(app, codes, error_codes)


def register_commands(app: Flask) -> None:
    app.cli.add_command(cli.db_group)
    app.cli.add_command(cli.openapi_command)


def register_protection(app: Flask, settings: Settings) -> None:
    """After every route exists: rate limits wrap the views that name one."""
    security.init_app(app, settings)
    ratelimit.init_app(app, settings, app.extensions[redis_infra.EXTENSION_KEY])


def register_observability(app: Flask) -> None:
    """Traces, when an OTLP endpoint is configured (metrics are counted where they happen)."""
    tracing.init_app(app)


def register_api_document(app: Flask, domains: Sequence[Domain]) -> None:
    """Last: the OpenAPI document describes every route registered above."""
    tags = {blueprint.name: domain.name for domain in domains for blueprint, _ in domain.blueprints}
    openapi.init_app(app, tags)
