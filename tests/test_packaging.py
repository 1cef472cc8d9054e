"""Production packaging without a Docker engine: compose, Dockerfile, gunicorn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from nexus.infrastructure.local_services import free_port, stop_process
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


def test_compose_services_images_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker"}
    assert services["postgres"]["image"] == "postgres:15-alpine"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["postgres"]["volumes"] == ["./data/postgres:/var/lib/postgresql/data"]
    assert services["redis"]["volumes"] == ["./data/redis:/data"]
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes"]
    assert services["web"]["ports"] == ["${NEXUS_WEB_PORT:-5000}:5000"]
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"] == ["flask", "--app", "nexus", "worker"]
    assert services["migrate"]["command"] == ["flask", "--app", "nexus", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_compose_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
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


def test_compose_network_config_and_worker_grace(compose: dict[str, Any]) -> None:
    assert compose["networks"] == {"model-net": {"driver": "bridge"}}
    for name, service in compose["services"].items():
        assert service["networks"] == ["model-net"], name
    for name in ("migrate", "web", "worker"):
        service = compose["services"][name]
        assert service["env_file"] == [{"path": ".env", "required": True}]
        assert service["environment"]["NEXUS_ENV"] == "prod"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "@postgres:5432/nexus" in service["environment"]["DATABASE_URL"]
    worker = compose["services"]["worker"]
    grace = int(worker["environment"]["NEXUS_WORKER_SHUTDOWN_GRACE"])
    stop_grace = int(re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    assert grace < stop_grace <= grace + 30  # room to finish, no needless wait


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


def test_env_example_documents_the_packaging_variables() -> None:
    documented = (REPO_ROOT / ".env.example").read_text()
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "FORWARDED_ALLOW_IPS", "GUNICORN_BIND"):
        assert name in documented


@pytest.fixture
def gunicorn(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    env = subprocess_env(
        fresh_database,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="3",
        NEXUS_LOG_FORMAT="json",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BIN / "gunicorn", "--config", "gunicorn.conf.py", "nexus.wsgi:app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _status(port) == 200, timeout=60, interval=0.3)
        yield port, log_path
    finally:
        stop_process(process, grace=30)


def _status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return int(response.status)
    except OSError:
        return 0


def test_gunicorn_serves_with_several_workers_and_one_json_access_line_each(
    gunicorn: tuple[int, Path],
) -> None:
    port, log_path = gunicorn
    ids = [f"gunicorn-{n}" for n in range(12)]
    for request_id in ids:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": request_id}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"status": "ok", "db": "ok", "redis": "ok"}
    time.sleep(0.5)  # let the workers flush
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [r for r in records if r["event"] == "http.request" and r["request_id"] in ids]
    assert sorted(r["request_id"] for r in access) == sorted(ids)  # exactly one each
    booted = [
        r for r in records if r.get("logger") == "gunicorn.error" and "Booting worker" in r["event"]
    ]
    assert len(booted) == 3


def test_worker_health_command(
    app: Any, fresh_database: str, subprocess_env: Callable[..., dict[str, str]], redis: Any
) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["worker-health"])
    assert result.exit_code == 1
    assert "no live worker with a fresh heartbeat" in result.output
    worker = start_worker(subprocess_env(fresh_database))
    try:
        wait_for(lambda: redis.scard("rq:workers") > 0, timeout=30)
        result = runner.invoke(args=["worker-health"])
        assert result.exit_code == 0, result.output
        assert "is healthy" in result.stdout
    finally:
        stop_worker(worker)
