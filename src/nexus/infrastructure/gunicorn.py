"""gunicorn's logger, routed through the Nexus logging chain.

Named by ``logger_class`` in ``gunicorn.conf.py``. gunicorn's own records
(``gunicorn.error``: booting workers, timeouts, signals) lose their private
handlers and flow through the same structlog chain as the app's, rendered as
JSON in staging/prod. gunicorn's access log is off: the app writes the one
access line per request, with its route, request id and user.
Imports no feature package.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn.glogging import Logger

from nexus.config import ConfigError, load_settings
from nexus.infrastructure.logging import configure_logging


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's ``Logger`` with our handlers and no access lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        try:
            settings = load_settings()
        except ConfigError as exc:
            # The master stops before forking any worker, with one clear message.
            sys.stderr.write(f"{exc}\n")
            raise SystemExit(2) from None
        configure_logging(settings)
        for name in ("gunicorn.error", "gunicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers = []
            logger.propagate = True

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """No-op: ``nexus.api.request_context`` logs each request once."""
