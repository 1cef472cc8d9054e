"""``python -m nexus.serve`` refuses server settings it cannot use, before starting anything."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.support import run

SERVE = [sys.executable, "-m", "nexus.serve"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"NEXUS_SERVER": "granian", "GUNICORN_BIND": "unix:/tmp/nexus.sock"},
         "GUNICORN_BIND must be HOST:PORT under granian, not 'unix:/tmp/nexus.sock'"),
        ({"NEXUS_SERVER": "granian", "GUNICORN_BIND": "127.0.0.1:http"},
         "GUNICORN_BIND must be HOST:PORT under granian"),
        ({"NEXUS_SERVER": "granian", "WEB_CONCURRENCY": "many"},
         "GRANIAN_WORKERS must be a whole number, not 'many'"),
        ({"NEXUS_SERVER": "granian", "GUNICORN_THREADS": "0"},
         "GRANIAN_BLOCKING_THREADS must be a whole number, not '0'"),
        ({"NEXUS_SERVER": "gunicorn", "GUNICORN_CONFIG": "/nonexistent/gunicorn.conf.py"},
         "no gunicorn configuration at /nonexistent/gunicorn.conf.py"),
    ],
)  # fmt: skip
def test_bad_server_settings_exit_2_with_one_line(
    subprocess_env: Callable[..., dict[str, str]],
    fresh_database: str,
    extra: dict[str, str],
    message: str,
) -> None:
    result = run(SERVE, subprocess_env(fresh_database, **extra))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_configuration_stops_the_launcher_before_any_server(
    subprocess_env: Callable[..., dict[str, str]],
) -> None:
    env = subprocess_env("postgresql://db/nexus", NEXUS_ENV="staging", NEXUS_SERVER="granian")
    result = run(SERVE, env)
    assert result.returncode == 2
    assert result.stderr.startswith("Nexus configuration is invalid (NEXUS_ENV=staging):")


def test_granian_takes_gunicorn_settings_and_its_own_thread_default() -> None:
    from nexus.serve import granian_environment  # noqa: PLC0415 - the function under test

    named = granian_environment(
        {"GUNICORN_BIND": "127.0.0.1:8123", "WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "6"}
    )
    assert (named["GRANIAN_HOST"], named["GRANIAN_PORT"]) == ("127.0.0.1", "8123")
    assert (named["GRANIAN_WORKERS"], named["GRANIAN_BLOCKING_THREADS"]) == ("3", "6")
    # Unset: granian's threads only run the app, and 8 measured faster than 4.
    assert (
        granian_environment({"GUNICORN_BIND": "127.0.0.1:8123"})["GRANIAN_BLOCKING_THREADS"] == "8"
    )
    # A GRANIAN_* variable of the operator's own still wins.
    assert (
        granian_environment({"GUNICORN_BIND": "127.0.0.1:8123", "GRANIAN_BLOCKING_THREADS": "2"})[
            "GRANIAN_BLOCKING_THREADS"
        ]
        == "2"
    )
