"""The WSGI entry point: ``gunicorn nexus.wsgi:app``.

Builds the app once per process at import; gunicorn imports it in each
worker after fork, so every worker has its own engine and Redis pool.
"""

from __future__ import annotations

from nexus.app import create_app

app = create_app()
