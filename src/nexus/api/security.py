"""The HTTP edge: who the client is behind proxies, security headers, CORS.

- **Client address.** With ``NEXUS_TRUSTED_PROXIES=N`` (N proxies in front
  of Nexus, each adding to ``X-Forwarded-For``), werkzeug's ``ProxyFix``
  takes the client's address N hops back and the scheme from
  ``X-Forwarded-Proto``, under gunicorn and the development server alike;
  ``request.remote_addr`` is then that address everywhere — the access
  log, the audit log and the rate limiter. 0 (the default): the headers
  are ignored and the peer is the client.
- **Headers** on every response, errors and 404s included: ``nosniff``, no
  referrer, no framing (``frame-ancestors`` and ``X-Frame-Options``), a
  Content-Security-Policy that lets a JSON answer do nothing (pages set
  their own; ``/docs`` gets one Swagger UI works under), ``Cache-Control:
  no-store`` on every answer to a request that carries credentials or asks
  for them (RFC 6749 §5.1 for tokens; personal data alike), and HSTS when
  ``NEXUS_HSTS_SECONDS`` is set.
- **CORS** for ``/api/*`` from the ``NEXUS_CORS_ORIGINS`` allowlist only
  (flask-cors); none by default, so browsers on other origins are refused.
- **No cookie session**: the API authenticates with bearer tokens, so no
  request reads or writes Flask's signed session cookie (and none pays for
  building its serializer).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response
from flask.sessions import NullSession, SessionInterface, SessionMixin
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from nexus.config import Settings

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's page starts itself with an inline script and inline styles.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
# Answers to these carry tokens or the caller's own data even without a bearer.
_CREDENTIAL_PATHS = ("/api/v1/auth/",)
EXPOSED_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
]


class NoSessions(SessionInterface):
    """Every request gets an empty, read-only session; no cookie is read or set."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin:  # noqa: ARG002
        return NullSession()

    def save_session(self, app: Flask, session: Any, response: Response) -> None:  # noqa: ARG002
        return None


class ResponseHeaders:
    """The security headers of every response, worked out once from the settings.

    Applied by the request middleware (:mod:`nexus.api.request_context`) to
    the header list as the response starts: a header the view set itself
    (``/docs``'s policy, say) is kept, except ``Cache-Control``, which an
    answer to a credentialed request always gets as ``no-store``.
    """

    def __init__(self, settings: Settings) -> None:
        defaults = [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ]
        if settings.hsts_seconds:
            hsts = f"max-age={settings.hsts_seconds}; includeSubDomains"
            defaults.append(("Strict-Transport-Security", hsts))
        self._defaults = [(name.lower(), name, value) for name, value in defaults]
        # The usual case, a response that set none of them: one extend.
        self._managed = frozenset(
            {key for key, _, _ in self._defaults} | {"content-security-policy"}
        )
        self._json_defaults = [*defaults, ("Content-Security-Policy", JSON_POLICY)]

    def apply(self, environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
        """Add the headers to ``headers`` (a WSGI response's list, changed in place)."""
        present = {name.lower() for name, _ in headers}
        path: str = environ.get("PATH_INFO", "")
        docs = path == "/docs" or path.startswith("/docs/")
        if not docs and present.isdisjoint(self._managed):
            headers.extend(self._json_defaults)
        else:
            for key, name, value in self._defaults:
                if key not in present:
                    headers.append((name, value))
            if "content-security-policy" not in present:
                headers.append(("Content-Security-Policy", DOCS_POLICY if docs else JSON_POLICY))
        if "HTTP_AUTHORIZATION" in environ or path.startswith(_CREDENTIAL_PATHS):
            if "cache-control" in present or "pragma" in present:
                headers[:] = [h for h in headers if h[0].lower() not in ("cache-control", "pragma")]
            headers.append(("Cache-Control", "no-store"))
            headers.append(("Pragma", "no-cache"))


def init_app(app: Flask, settings: Settings) -> None:
    """No cookie session; proxies and CORS as configured (headers: :class:`ResponseHeaders`)."""
    app.session_interface = NoSessions()
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        # Outside the request middleware, which then logs the client's address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    origins = settings.cors_origin_list
    if origins:
        CORS(
            app,
            resources={r"/api/*": {"origins": origins}},
            supports_credentials=settings.cors_allow_credentials,
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
