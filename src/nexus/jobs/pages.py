"""``GET /admin/jobs``: the jobs page for admins — queues, workers, jobs, retry and cancel.

A static page over the admin API: the browser signs in with the API's own
tokens (``POST /api/v1/auth/login``, kept in the tab's ``sessionStorage``)
and reads ``/api/v1/admin/queues``, ``/workers`` and ``/jobs`` every two
seconds; its buttons call ``retry``, ``cancel`` and ``canary``. The server
renders only the shell, so the page has no access of its own to check: every
figure on it passed the API's authorization. No framework and no build step;
nothing is loaded from another host.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, make_response, render_template

from nexus.api.openapi import hide

bp = Blueprint(
    "jobs_pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/admin/jobs/static",
)


@bp.get("/admin/jobs")
def page() -> Response:
    response = make_response(render_template("admin_jobs.html"))
    response.headers["Cache-Control"] = "no-store"
    # Scripts and styles from this origin only; the page talks to this API only.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    hide(app, "jobs_pages.page", "jobs_pages.static")
