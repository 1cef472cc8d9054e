"""The gunicorn entry point builds the app, or exits with the configuration problems."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import pytest
from flask import Flask

from tests.support import dispose, run


def test_wsgi_module_builds_the_app(
    monkeypatch: pytest.MonkeyPatch,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    for key, value in subprocess_env(fresh_database).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delitem(sys.modules, "nexus.wsgi", raising=False)
    wsgi = importlib.import_module("nexus.wsgi")
    try:
        assert isinstance(wsgi.app, Flask)
        response = wsgi.app.test_client().get("/healthz")
        assert response.status_code == 200
    finally:
        dispose(wsgi.app)
        sys.modules.pop("nexus.wsgi")


def test_wsgi_exits_2_listing_every_bad_variable(
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    env = subprocess_env("postgresql://db/nexus", NEXUS_ENV="staging", NEXUS_DEBUG="1")
    result = run([sys.executable, "-c", "import nexus.wsgi"], env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[:3] == [
        "Nexus configuration is invalid (NEXUS_ENV=staging):",
        "  - NEXUS_DEBUG: debug mode is refused in staging",
        "  - NEXUS_SECRET_KEY: required in staging",
    ]
