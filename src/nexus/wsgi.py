"""The WSGI entry point: ``gunicorn nexus.wsgi:app``.

Builds the app once per process at import; gunicorn imports it in each
worker after fork, so every worker has its own engine and Redis pool. A bad
configuration exits with the list of bad variables.
"""

from __future__ import annotations

from nexus.app import create_app_or_exit

app = create_app_or_exit()
