"""The web server's launcher: ``python -m nexus.serve`` (``make serve``, the image, compose).

``NEXUS_SERVER`` picks the server; both serve ``nexus.wsgi:app`` with the
same settings, named as gunicorn names them:

- ``gunicorn`` (the default): ``gunicorn --config gunicorn.conf.py``, every
  setting from that file (``GUNICORN_*``, ``WEB_CONCURRENCY``, ``PORT``).
- ``granian``: granian's WSGI server, about twice as fast on the same
  processes (docs/decisions/0034). From the same variables: the address
  (``GUNICORN_BIND``, else ``0.0.0.0:$PORT``), ``WEB_CONCURRENCY``
  processes of ``GUNICORN_THREADS`` threads (8 when unset: granian's
  threads only run the app), ``GUNICORN_GRACEFUL_TIMEOUT``
  for requests in flight at SIGTERM, failed workers respawned, workers
  recycled after ``NEXUS_WORKER_LIFETIME`` (granian recycles by age, not by
  request count; ``GUNICORN_MAX_REQUESTS=0`` turns recycling off under both),
  its own lines in the app's log format, and Prometheus's multiprocess
  directory set up as ``gunicorn.conf.py`` does. Any ``GRANIAN_*`` variable
  still overrides. granian has no request timeout of its own: the
  database's ``statement_timeout`` and Redis's socket timeout bound a request.

The settings are checked first, so a bad configuration ends here with the
list of bad variables, before any server starts; then the launcher becomes
the server (``exec``), which gets the signals directly.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import NoReturn

from nexus.config import ConfigError, load_settings

APP = "nexus.wsgi:app"
SERVERS = ("gunicorn", "granian")
DEFAULT_WORKER_LIFETIME = "6h"
# granian's threads only run the app (its own runtime does the I/O): with
# GUNICORN_THREADS unset, 8 per process served 5-6 % more than gunicorn's 4
# (docs/decisions/0034); the database pool (5 + 10 overflow) covers them.
GRANIAN_THREADS = "8"


class LaunchError(Exception):
    """A server setting the launcher cannot use; the message says which."""


def granian_environment(environ: dict[str, str]) -> dict[str, str]:
    """granian's ``GRANIAN_*`` settings from gunicorn's names (set ones are kept)."""
    host, port = _bind(environ)
    workers = environ.get("WEB_CONCURRENCY") or str(multiprocessing.cpu_count() * 2 + 1)
    derived = {
        "GRANIAN_INTERFACE": "wsgi",
        "GRANIAN_HTTP": "1",
        "GRANIAN_HOST": host,
        "GRANIAN_PORT": port,
        "GRANIAN_WORKERS": workers,
        "GRANIAN_BLOCKING_THREADS": environ.get("GUNICORN_THREADS") or GRANIAN_THREADS,
        "GRANIAN_WORKERS_KILL_TIMEOUT": environ.get("GUNICORN_GRACEFUL_TIMEOUT") or "30",
        "GRANIAN_RESPAWN_FAILED_WORKERS": "true",
        "GRANIAN_LOG_CONFIG": str(resources.files("nexus") / "granian_logging.json"),
        "GRANIAN_LOG_LEVEL": environ.get("NEXUS_LOG_LEVEL", "info").lower(),
    }
    if environ.get("GUNICORN_MAX_REQUESTS") != "0":
        lifetime = environ.get("NEXUS_WORKER_LIFETIME") or DEFAULT_WORKER_LIFETIME
        derived["GRANIAN_WORKERS_LIFETIME"] = lifetime
    for name, value in derived.items():
        if not _int_ok(name, value):
            raise LaunchError(f"{name} must be a whole number, not {value!r}")
    return {**derived, **{k: v for k, v in environ.items() if k.startswith("GRANIAN_")}}


def _int_ok(name: str, value: str) -> bool:
    numeric = ("GRANIAN_PORT", "GRANIAN_WORKERS", "GRANIAN_BLOCKING_THREADS")
    return name not in numeric or (value.isdigit() and int(value) > 0)


def _bind(environ: dict[str, str]) -> tuple[str, str]:
    bind = environ.get("GUNICORN_BIND") or f"0.0.0.0:{environ.get('PORT', '5000')}"
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LaunchError(f"GUNICORN_BIND must be HOST:PORT under granian, not {bind!r}")
    return host.strip("[]"), port


def _metrics_directory(environ: dict[str, str]) -> dict[str, str]:
    """A fresh multiprocess directory for this server, as gunicorn.conf.py makes one."""
    if "PROMETHEUS_MULTIPROC_DIR" in environ:
        return {}
    # The launcher's pid is the server's (exec): one directory per server.
    directory = os.path.join(tempfile.gettempdir(), f"nexus-metrics-{os.getpid()}")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)
    return {"PROMETHEUS_MULTIPROC_DIR": directory}


def command(environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The server's argv and environment, as ``NEXUS_SERVER`` asks."""
    server = environ.get("NEXUS_SERVER") or "gunicorn"
    if server not in SERVERS:
        raise LaunchError(f"NEXUS_SERVER must be one of {', '.join(SERVERS)}, not {server!r}")
    if server == "gunicorn":
        config = environ.get("GUNICORN_CONFIG") or "gunicorn.conf.py"
        if not Path(config).is_file():
            raise LaunchError(f"no gunicorn configuration at {config} (set GUNICORN_CONFIG)")
        return [_executable("gunicorn"), "--config", config, APP], environ
    env = {**environ, **granian_environment(environ)}
    return [_executable("granian"), APP], env


def _executable(name: str) -> str:
    # The one beside this Python (the venv's, the image's), else PATH's.
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else (shutil.which(name) or name)


def main() -> NoReturn:
    try:
        load_settings()
        argv, env = command(dict(os.environ))
        if "GRANIAN_INTERFACE" in env:
            env.update(_metrics_directory(env))
    except (ConfigError, LaunchError) as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # noqa: S606 - the server replaces the launcher


if __name__ == "__main__":
    main()
