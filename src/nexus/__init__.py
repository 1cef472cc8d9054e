"""Nexus: a Flask 3 + RQ service foundation on PostgreSQL and Redis.

``flask --app nexus ...`` finds ``create_app`` here: the factory that exits
with the list of bad variables when the configuration is invalid
(``nexus.app.create_app`` raises instead, for code and tests). It is imported
on first use, so importing ``nexus`` (or ``nexus.config``) stays cheap and has
no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.app import create_app_or_exit as create_app

from nexus.version import __version__

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from nexus.app import create_app_or_exit  # noqa: PLC0415

        return create_app_or_exit
    raise AttributeError(name)
