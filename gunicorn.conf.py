"""gunicorn settings for Nexus, each overridable from the environment.

``gunicorn --config gunicorn.conf.py nexus.wsgi:app`` (the image's default
command, and ``make serve``). The app is built in each worker after fork
(no preload), so every worker opens its own database and Redis pools.
"""

import multiprocessing
import os
import shutil
import tempfile


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '5000')}")
# Two processes per core plus one keeps cores busy while others wait on I/O;
# threads let each process overlap database and Redis round trips.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
# A request that takes longer than this gets its worker restarted.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM, in-flight requests get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# The longest request line gunicorn accepts (its maximum; default 4094): a
# list's query string at its documented limits, percent-encoded, fits.
limit_request_line = _int("GUNICORN_LIMIT_REQUEST_LINE", 8190)
# Recycle workers now and then (slow leaks), staggered so they never restart
# together. Rarely: a worker's start costs about 0.8 s of CPU (imports, the
# app, a first Argon2 hash), which every 1,000 requests doubled the cost of a
# cheap request and, under load, stalled requests for 1.5 s
# (docs/reliability.md).
max_requests = _int("GUNICORN_MAX_REQUESTS", 50_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 5_000)
# gunicorn trusts no proxy's X-Forwarded-* itself: the app does, for as many
# proxies as NEXUS_TRUSTED_PROXIES says (werkzeug's ProxyFix), the same under
# every server, for the address as well as the scheme.
forwarded_allow_ips = ""
preload_app = False
# Heartbeat files in memory: a container's overlay filesystem can stall them.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The app writes the one access line per request; gunicorn's own records go
# through the same structlog chain (JSON in staging/prod).
accesslog = None
errorlog = "-"
logger_class = "nexus.infrastructure.gunicorn.GunicornLogger"
proc_name = "nexus-web"
# The socket `gunicornc` talks to. gunicorn's default lives in $HOME, which the
# image's user does not have; the image sets /tmp/gunicorn.ctl.
if control_socket_path := os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = control_socket_path

# Prometheus metrics from every worker process add up (prometheus-client's
# multiprocess mode): each worker writes its counts to files in this
# directory, which must be set before any worker imports the app. One
# directory per server, emptied when it starts; an exiting worker's live
# gauges are dropped, its counts kept (nexus.infrastructure.metrics).
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"nexus-metrics-{os.getpid()}"),
)


def on_starting(_server: object) -> None:
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, mode=0o700, exist_ok=True)


def child_exit(_server: object, worker: object) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415 - the master imports no app code

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(_server: object) -> None:
    shutil.rmtree(metrics_dir, ignore_errors=True)
