"""`make dev`'s supervisor, black-box: health, restarts, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from dotenv import dotenv_values
from flask import Flask
from werkzeug.serving import make_server

from nexus.config import load_settings
from nexus.devstack import SECRET_VARIABLES, init_env, wait_healthy
from nexus.infrastructure.local_services import free_port, port_in_use
from tests.support import REPO_ROOT, wait_for


def healthz(port: int) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def descendant(root: psutil.Process, fragment: str) -> psutil.Process | None:
    for proc in root.children(recursive=True):
        try:
            if fragment in " ".join(proc.cmdline()):
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.mark.usefixtures("servers")  # a wheel or system server must exist for the stack
def test_dev_stack_serves_restarts_and_stops_cleanly(tmp_path: Path, server_dir: Path) -> None:
    ports = {"web": free_port(), "pg": free_port(), "redis": free_port()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL") and not key.startswith("NEXUS_")
    }
    env |= {"FLASK_SKIP_DOTENV": "1", "PYTHONUNBUFFERED": "1"}
    data_dir = server_dir / "dev"
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        stack = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nexus.devstack",
                "--data-dir",
                str(data_dir),
                "--web-port",
                str(ports["web"]),
                "--pg-port",
                str(ports["pg"]),
                "--redis-port",
                str(ports["redis"]),
            ],
            cwd=tmp_path,  # no .env of the developer's
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    root = psutil.Process(stack.pid)
    try:
        wait_for(lambda: healthz(ports["web"])[0] == 200, timeout=90, interval=0.5)
        assert healthz(ports["web"]) == (200, {"status": "ok", "db": "ok", "redis": "ok"})
        services = (data_dir / "services.env").read_text()
        assert f"REDIS_URL=redis://127.0.0.1:{ports['redis']}/0" in services
        assert f"127.0.0.1:{ports['pg']}/nexus" in services
        assert list(data_dir.glob("postgres-*/PG_VERSION"))
        assert list(data_dir.glob("*-*.*/appendonlydir"))  # redis-7.0 or valkey-8.1

        # Redis dies: /healthz says so, the supervisor restarts it, health returns.
        redis = descendant(root, f"127.0.0.1:{ports['redis']}") or descendant(
            root, "--port " + str(ports["redis"])
        )
        assert redis is not None
        redis.kill()
        wait_for(
            lambda: (
                healthz(ports["web"]) == (503, {"status": "degraded", "db": "ok", "redis": "error"})
            ),
            timeout=10,
        )
        wait_for(lambda: healthz(ports["web"])[0] == 200, timeout=30, interval=0.5)

        # The worker dies: it comes back.
        worker = descendant(root, "nexus worker")
        assert worker is not None
        worker.kill()
        wait_for(
            lambda: (w := descendant(root, "nexus worker")) is not None and w.pid != worker.pid,
            timeout=30,
        )
    finally:
        everything = root.children(recursive=True)
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
        _, alive = psutil.wait_procs(everything, timeout=15)
    output = log_path.read_text()
    assert stack.returncode == 0, output
    assert alive == [], output
    for port in ports.values():
        assert not port_in_use(port)
    assert not (data_dir / "services.env").exists()
    assert "redis exited" in output
    assert "worker exited" in output


def test_init_env_writes_fresh_strong_secrets_once(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    assert init_env(REPO_ROOT / ".env.example", target) is True
    values = dotenv_values(target)
    secrets = [values[name] for name in SECRET_VARIABLES]
    assert all(secret and len(secret) >= 48 for secret in secrets)
    assert len(set(secrets)) == 3
    assert len(values["POSTGRES_PASSWORD"] or "") >= 24
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.read_text()
    assert init_env(REPO_ROOT / ".env.example", target) is False  # never overwrites
    assert target.read_text() == before


def test_init_env_output_satisfies_production_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_env(REPO_ROOT / ".env.example", tmp_path / ".env")
    for name, value in dotenv_values(tmp_path / ".env").items():
        if value is not None and name.startswith("NEXUS_") and name != "NEXUS_ENV":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEXUS_ENV", "prod")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nexus:pw@postgres/nexus")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.chdir(tmp_path)
    assert load_settings().env == "prod"


def test_wait_healthy(servers: object, make_app: Callable[..., Flask]) -> None:
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert wait_healthy(f"http://127.0.0.1:{server.port}/healthz", timeout=10) is True
    finally:
        server.shutdown()
    assert wait_healthy(f"http://127.0.0.1:{free_port()}/healthz", timeout=0.5) is False
