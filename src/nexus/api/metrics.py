"""``GET /metrics``: every metric, in the Prometheus text format, for the scraper.

Open in local and test. In staging and prod it answers only a request with
``Authorization: Bearer <NEXUS_INTERNAL_SECRET>`` (Prometheus sends it with
``authorization: {credentials_file: ...}`` in its scrape config,
``deploy/prometheus/prometheus.yml``); anyone else gets 403
``E_INTERNAL_ONLY``. Not in the API document: it is not part of the API.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from nexus.api.errors import ErrorCode, problem
from nexus.api.openapi import hide
from nexus.config import current_settings
from nexus.infrastructure import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def show() -> Response:
    settings = current_settings()
    if settings.env.is_deployed:
        secret = settings.internal_secret.get_secret_value() if settings.internal_secret else ""
        offered = request.headers.get("Authorization", "")
        if not secret or not hmac.compare_digest(offered.encode(), f"Bearer {secret}".encode()):
            return problem(
                ErrorCode.E_INTERNAL_ONLY,
                "Metrics are for the scraper: send Authorization: Bearer <NEXUS_INTERNAL_SECRET>.",
            )
    response = Response(metrics.render(current_app), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hide(app, "metrics.show")
