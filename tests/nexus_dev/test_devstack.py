"""`make dev`, black-box: health, restarts, and a clean Ctrl-C."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from nexus import migrations
from nexus_dev.local_services import free_port, port_in_use
from tests.live import post_json
from tests.support import checkout, interrupt, wait_for


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
@pytest.mark.parametrize("settings_in", ["environment", ".env"])
def test_make_dev_serves_restarts_and_stops_cleanly(
    tmp_path: Path, server_dir: Path, settings_in: str
) -> None:
    # Every port its own: a developer's make dev may be running beside the tests.
    ports = {"web": free_port(), "pg": free_port(), "redis": free_port(), "mail": free_port()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL") and not key.startswith(("NEXUS_", "MAKE"))
    }
    data_dir = server_dir / "dev"
    env |= {"FLASK_SKIP_DOTENV": "1", "PYTHONUNBUFFERED": "1"}
    settings = {
        "NEXUS_DEV_DATA_DIR": str(data_dir),
        "NEXUS_DEV_WEB_PORT": str(ports["web"]),
        "NEXUS_DEV_PG_PORT": str(ports["pg"]),
        "NEXUS_DEV_REDIS_PORT": str(ports["redis"]),
        "NEXUS_DEV_MAIL_PORT": str(ports["mail"]),
    }
    clone = checkout(tmp_path / "clone")  # no .env of the developer's
    if settings_in == ".env":
        (clone / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    else:
        env |= settings
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        stack = subprocess.Popen(
            ["make", "dev"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a terminal's foreground job
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
        assert "NEXUS_SMTP_HOST=127.0.0.1" in services

        # Registration mails a link: the catch-all server has it, `make mail` lists it.
        post_json(
            f"http://127.0.0.1:{ports['web']}/api/v1/auth/register",
            {"email": "dev@example.com", "password": "violet-tangerine-kettle-42"},
        )
        wait_for(lambda: list((data_dir / "mail").glob("*.eml")), timeout=60, interval=0.3)
        listed = subprocess.run(
            [".venv/bin/python", "-m", "nexus_dev.mailcatcher", "list",
             "--dir", str(data_dir / "mail")],
            cwd=clone, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "dev@example.com  Confirm your e-mail address" in listed.stdout

        # Another terminal in the checkout finds the servers with no URL set.
        other = subprocess.run(
            [".venv/bin/flask", "--app", "nexus", "db", "current"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode == 0, other.stderr
        assert other.stdout.strip() == migrations.head()

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
        restarted = wait_for(
            lambda: (w := descendant(root, "nexus worker")) is not None and w.pid != worker.pid,
            timeout=60,
            raises=False,
        )
        # Once took over 30 s in CI under a full suite's load: the log says why.
        assert restarted, log_path.read_text()[-3000:]
    finally:
        everything = root.children(recursive=True)
        interrupt(stack, timeout=60)  # Ctrl-C
        _, alive = psutil.wait_procs(everything, timeout=15)
    output = log_path.read_text()
    assert alive == [], output
    assert output.rstrip().endswith("dev | stopped"), output
    for port in ports.values():
        assert not port_in_use(port)
    assert not (data_dir / "services.env").exists()
    assert "redis exited" in output
    assert "worker exited" in output
