"""Background jobs as a domain: its routes and page, the engine's own jobs, its commands, its table.

The engine itself (registry, services, worker, relay, schedules) is plumbing
every domain uses; this declares only what it adds to the app.
"""

from __future__ import annotations

from flask import Flask

from nexus.domain import Domain
from nexus.jobs import canary, cli, maintenance, metrics, models, pages, routes


def _init_app(app: Flask) -> None:
    pages.init_app(app)  # the /admin/jobs page, outside /api/v1
    metrics.init_app(app)  # queue depths and workers at each /metrics scrape


domain = Domain(
    name="jobs",
    blueprints=((routes.bp, ""), (routes.admin_bp, "/admin")),
    job_modules=(canary, maintenance),
    commands=(cli.worker_command, cli.worker_health_command, cli.jobs_group),
    models=(models,),
    init_app=_init_app,
)
