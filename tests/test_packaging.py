"""Production packaging without a Docker engine: compose, Dockerfile, gunicorn."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
from rq import Worker
from ruamel.yaml import YAML

from nexus_dev.local_services import free_port, stop_process
from tests.live import http_status
from tests.support import REPO_ROOT, start_worker, stop_worker, wait_for

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load((REPO_ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_builds_one_image_for_every_app_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "mail"}
    assert services["postgres"]["image"] == "postgres:15-alpine"
    assert services["redis"]["image"] == "redis:7-alpine"
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["web"]
    for name in ("migrate", "web", "worker", "mail"):
        assert services[name]["image"] == "nexus:local"
    for name in ("migrate", "worker", "mail"):
        assert services[name]["pull_policy"] == "never"  # nexus:local is never on a registry
    assert services["mail"]["profiles"] == ["mail"]  # only when asked for


def test_compose_keeps_data_in_project_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_compose_publishes_on_loopback_by_default(compose: dict[str, Any]) -> None:
    assert compose["services"]["web"]["ports"] == [
        "${NEXUS_WEB_HOST:-127.0.0.1}:${NEXUS_WEB_PORT:-5000}:5000"
    ]
    for name in ("postgres", "redis", "migrate", "worker"):
        assert "ports" not in compose["services"][name], name


def test_compose_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # Over TCP: the entrypoint's init server listens on the Unix socket only.
    assert "--host=127.0.0.1" in services["postgres"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["worker"]["healthcheck"]["test"][-1] == "worker-health"
    databases = {"postgres": "service_healthy", "redis": "service_healthy"}
    assert _conditions(services["migrate"]) == databases
    for name in ("web", "worker"):
        assert _conditions(services[name]) == {
            **databases,
            "migrate": "service_completed_successfully",
        }


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service["depends_on"].items()}


def _seconds(duration: str) -> int:
    return int(re.fullmatch(r"(\d+)s", duration).group(1))  # type: ignore[union-attr]


def test_compose_stop_grace_outlasts_each_drain(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    graceful = 30  # gunicorn.conf.py's GUNICORN_GRACEFUL_TIMEOUT default
    assert (
        'graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)'
        in (REPO_ROOT / "gunicorn.conf.py").read_text()
    )
    assert graceful < _seconds(web["stop_grace_period"]) <= graceful + 15
    worker = compose["services"]["worker"]
    grace = int(worker["environment"]["NEXUS_WORKER_SHUTDOWN_GRACE"])
    assert grace < _seconds(worker["stop_grace_period"]) <= grace + 30


def test_compose_gives_secrets_as_files_and_least_privilege_urls(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for name in ("migrate", "web", "worker"):
        service = services[name]
        assert service["environment"]["NEXUS_ENV"] == "prod"
        assert service["read_only"] is True
        # Blank in the environment (a .env for make dev must not leak in) ...
        for variable in ("DATABASE_URL", "NEXUS_SECRET_KEY", "NEXUS_JWT_SECRET"):
            assert service["environment"][variable] == "", (name, variable)
        # ... and given as files.
        assert "DATABASE_URL" in service["secrets"]
    # Only migrations connect as the tables' owner.
    assert "MIGRATION_DATABASE_URL" in services["migrate"]["secrets"]
    assert "MIGRATION_DATABASE_URL" not in services["web"]["secrets"]
    assert "MIGRATION_DATABASE_URL" not in services["worker"]["secrets"]
    for name, secret in compose["secrets"].items():
        assert secret == {"file": f"./data/secrets/{name}"}


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [BIN / "hadolint", "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_hashed_slim_and_not_root() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2
    assert all("slim" in image for image in stages)
    runtime = text.split("AS runtime", 1)[1]
    assert "--require-hashes" in text
    assert "requirements-dev" not in text
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert "PYTHONUNBUFFERED=1" in runtime
    assert re.search(r"^HEALTHCHECK .*\n?.*/livez", runtime, re.MULTILINE)
    assert "apt-get" not in runtime
    assert "gcc" not in text
    assert "pip uninstall" in text  # no installer left in the runtime image
    assert re.search(r"^COPY src/nexus /app/src/nexus$", text, re.MULTILINE)  # not nexus_dev


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = [
        line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.strip()
    ]
    assert next(line for line in ignored if not line.startswith("#")) == "*"  # all, then these:
    allowed = {line[1:] for line in ignored if line.startswith("!")}
    assert allowed == {"requirements.txt", "gunicorn.conf.py", "src/nexus"}


def test_env_example_documents_the_packaging_variables() -> None:
    documented = (REPO_ROOT / ".env.example").read_text()
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "NEXUS_TRUSTED_PROXIES", "GUNICORN_BIND"):
        assert name in documented


class Served(NamedTuple):
    port: int
    log: Path
    make: subprocess.Popen[bytes]

    def master(self) -> psutil.Process:
        """The server's own process (the launcher exec'd it), below make and its shell."""
        for proc in psutil.Process(self.make.pid).children(recursive=True):
            if proc.name() not in ("sh", "dash", "bash"):
                return proc  # parents are listed before their children
        raise AssertionError("no server process under make")


@pytest.fixture(params=["gunicorn", "granian"])
def server(
    request: pytest.FixtureRequest,
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> Iterator[Served]:
    """``make serve`` as a user runs it, under each server ``NEXUS_SERVER`` offers."""
    port = free_port()
    log_path = tmp_path / "server.log"
    env = subprocess_env(
        fresh_database,
        NEXUS_SERVER=request.param,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="3",
        NEXUS_LOG_FORMAT="json",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "--silent", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, timeout=60, interval=0.3
        )
        yield Served(port, log_path, process)
    finally:
        stop_process(process, grace=30)


def _records(log_path: Path) -> list[dict[str, Any]]:
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_make_serve_runs_several_workers_with_one_json_access_line_each(
    server: Served,
) -> None:
    port, log_path = server.port, server.log
    ids = [f"serve-{n}" for n in range(12)]
    for request_id in ids:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": request_id}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok", "db": "ok", "redis": "ok"}
            assert response.headers["X-Request-ID"] == request_id
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok"}
    time.sleep(0.5)  # let the workers flush
    records = _records(log_path)  # every line is one JSON object
    access = [r for r in records if r["event"] == "http.request" and r["request_id"] in ids]
    assert sorted(r["request_id"] for r in access) == sorted(ids)  # exactly one each
    assert {r["route"] for r in access} == {"/healthz"}
    # Three worker processes started, each saying so in the app's format.
    started = [r for r in records if r["event"] == "app.started"] or [
        r for r in records if "Booting worker" in r["event"] or "Spawning worker" in r["event"]
    ]
    assert len(started) == 3, records
    # /metrics adds up every process's counts.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    healthz = re.search(
        r'nexus_http_requests_total\{method="GET",route="/healthz",status="200"\} ([\d.]+)',
        exposition,
    )
    assert healthz is not None
    assert float(healthz.group(1)) >= 12


def test_make_serve_finishes_a_request_in_flight_when_told_to_stop(
    server: Served,
) -> None:
    port = server.port
    body = b'{"email": "nobody@example.com", "password": "not-the-password-1"}'
    head = LOGIN + f"Content-Length: {len(body)}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body[:10])  # the request is in the app, reading its body
        time.sleep(1)
        server.master().send_signal(signal.SIGTERM)  # as docker stop signals PID 1
        time.sleep(1)
        sock.sendall(body[10:])
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]
    assert b"application/problem+json" in answer
    # ...and then the server exits.
    assert server.make.wait(timeout=40) == 0


def test_make_serve_refuses_an_unknown_server(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    env = subprocess_env(fresh_database, NEXUS_SERVER="waitress")
    result = subprocess.run(
        ["make", "--no-print-directory", "serve"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "NEXUS_SERVER must be one of gunicorn, granian, not 'waitress'" in result.stderr


def test_worker_health_command(
    app: Any, fresh_database: str, subprocess_env: Callable[..., dict[str, str]], redis: Any
) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["worker-health"])
    assert result.exit_code == 1
    assert "no live worker with a fresh heartbeat" in result.output
    worker = start_worker(subprocess_env(fresh_database))
    try:
        # Idle: registered, past its start-up jobs, RQ's signal handlers in place.
        wait_for(
            lambda: [w.get_state() for w in Worker.all(connection=redis)] == ["idle"], timeout=30
        )
        result = runner.invoke(args=["worker-health"])
        assert result.exit_code == 0, result.output
        assert "is healthy" in result.stdout
    finally:
        stop_worker(worker)


def _raw(port: int, request: bytes, *, more: bytes | None = None) -> tuple[bytes, bytes | None]:
    """Send raw bytes to the server; the first response, and the answer to ``more`` on the
    same connection (``b""`` if the server closed it, ``None`` if not asked)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        first = _read_response(sock)
        if more is None:
            return first, None
        try:
            sock.sendall(more)
            return first, _read_response(sock)
        except (BrokenPipeError, ConnectionResetError):
            return first, b""


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length]


def _chunked(body: bytes, size: int = 65536) -> bytes:
    out = b""
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


LOGIN = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
HEALTH = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_chunked_body_over_the_limit_is_413_and_the_connection_stays_sane(
    server: Served,
) -> None:
    port = server.port
    limit = 1_048_576  # NEXUS_MAX_BODY_BYTES's default
    head = b'{"email": "a@example.com", "password": "not-the-password-1"}'
    body = head + b" " * (limit - len(head)) + b"x" * (2 * limit)
    first, then = _raw(
        port, LOGIN + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body), more=HEALTH
    )
    assert first.startswith(b"HTTP/1.1 413 "), first[:200]
    assert b"E_PAYLOAD_TOO_LARGE" in first
    # The next request on the connection is answered, or the connection is closed.
    assert then == b"" or then.startswith(b"HTTP/1.1 200 "), then


def test_malformed_chunked_framing_is_a_400_problem(server: Served) -> None:
    port = server.port
    first, _ = _raw(port, LOGIN + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 400 "), first[:300]
    assert b"application/problem+json" in first
    assert b"E_INVALID_REQUEST" in first
