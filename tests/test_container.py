"""`make up` on a real Docker engine, from a clean checkout, as a new user runs it.

One stack for the module, under a project name and port of its own, so it
runs beside a developer's own `make up`: health, a job run by the worker
container, secrets kept out of every environment, the app's database role
held to rows, `make down && make up` keeping the data, and the refusals when
the secrets and the data no longer match. `make test-container` runs this
module; with ``CI=true`` a missing engine fails it rather than skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nexus_dev.local_services import free_port
from tests.support import checkout, wait_for

pytestmark = pytest.mark.docker

HEALTHY = {"status": "ok", "db": "ok", "redis": "ok"}
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "container-test-admin-password"
SECRET_NAMES = (
    "POSTGRES_PASSWORD",
    "NEXUS_APP_DB_PASSWORD",
    "MIGRATION_DATABASE_URL",
    "DATABASE_URL",
    "NEXUS_SECRET_KEY",
    "NEXUS_JWT_SECRET",
    "NEXUS_INTERNAL_SECRET",
)


@dataclass
class Stack:
    """A `make up` stack in a clean checkout of its own."""

    root: Path
    env: dict[str, str]
    port: int
    timings: dict[str, list[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def make(self, target: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(
            ["make", target],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.timings.setdefault(target, []).append(round(time.monotonic() - started, 1))
        return result

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def containers(self) -> list[str]:
        return self.compose("ps", "--all", "--quiet").stdout.split()


def _engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        compose = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0 and compose.returncode == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not _engine_available():
        message = "no Docker engine with the compose plugin (`docker info`, `docker compose`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = checkout(tmp_path_factory.mktemp("compose") / "nexus", venv=False)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NEXUS_", "COMPOSE_", "MAKE", "VIRTUAL_ENV"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    # No venv on PATH: `make up` needs Docker and a python3, nothing installed.
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if not part.startswith(sys.prefix)
    )
    port = free_port()
    env |= {
        "COMPOSE_PROJECT_NAME": f"nexus-test-{uuid.uuid4().hex[:8]}",
        "NEXUS_WEB_PORT": str(port),
        # The optional catch-all mail server, and the app pointed at it.
        "COMPOSE_PROFILES": "mail",
    }
    (root / ".env").write_text(
        "NEXUS_SMTP_HOST=mail\nNEXUS_SMTP_PORT=1025\nNEXUS_SMTP_SECURITY=none\n"
    )
    stack = Stack(root=root, env=env, port=port)
    try:
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300)
        print("make timings (s):", json.dumps(stack.timings))  # noqa: T201 - for the README figures


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except OSError:
        return 0, None


def _post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _login(stack: Stack) -> str:
    status, body = _post(
        f"{stack.url}/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert status == 200, body
    token: str = body["data"]["access_token"]
    return token


def _inspect(*ids: str) -> list[dict[str, Any]]:
    """``docker inspect`` of these containers."""
    result = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True)
    inspected: list[dict[str, Any]] = json.loads(result.stdout)
    return inspected


def _secret_values(stack: Stack) -> dict[str, str]:
    directory = stack.root / "data" / "secrets"
    return {name: (directory / name).read_text().strip() for name in SECRET_NAMES}


def test_make_up_from_a_clean_checkout_answers_healthz(stack: Stack) -> None:
    result = stack.make("up")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Nexus is up: {stack.url}" in result.stdout
    assert _get(f"{stack.url}/healthz") == (200, HEALTHY)
    # The secrets were made for this checkout: one file each, the directory private.
    directory = stack.root / "data" / "secrets"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert sorted(path.name for path in directory.iterdir()) == sorted(SECRET_NAMES)


def test_a_canary_posted_by_an_admin_runs_in_the_worker_container(stack: Stack) -> None:
    created = stack.compose(
        "exec",
        "-T",
        "-e",
        f"NEXUS_ADMIN_PASSWORD={ADMIN_PASSWORD}",
        "web",
        "flask",
        "--app",
        "nexus",
        "create-admin",
        ADMIN_EMAIL,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    token = _login(stack)
    status, body = _post(f"{stack.url}/api/v1/admin/jobs/canary", {"seconds": 0.2}, token)
    assert status == 202, body
    job_id = body["data"]["id"]
    job = wait_for(
        lambda: (
            (reply := _get(f"{stack.url}/api/v1/jobs/{job_id}", token))[1]["data"]["status"]
            == "finished"
            and reply[1]["data"]
        ),
        timeout=90,
        interval=0.5,
    )
    assert job["attempts"] == 1
    logs = stack.compose("logs", "--no-color", "worker").stdout
    assert job_id in logs  # the worker container ran it, not some other worker


def test_a_registration_mails_its_link_through_the_optional_mail_service(stack: Stack) -> None:
    status, body = _post(
        f"{stack.url}/api/v1/auth/register",
        {"email": "newcomer@example.com", "password": "container-newcomer-password"},
    )
    assert status == 201, body

    def caught() -> str:
        logs = stack.compose("logs", "--no-color", "mail").stdout
        return logs if "Confirm your e-mail address" in logs else ""

    logs = wait_for(caught, timeout=90, interval=1)
    assert "newcomer@example.com" in logs
    assert "verify-email" in logs


def test_no_secret_reaches_a_container_environment(stack: Stack) -> None:
    secrets = _secret_values(stack)
    ids = stack.containers()
    assert len(ids) == 6  # postgres, redis, migrate (exited), web, worker, mail
    for container in _inspect(*ids):
        environment = container["Config"]["Env"] or []
        for entry in environment:
            name, _, value = entry.partition("=")
            assert not any(secret in value for secret in secrets.values()), (
                container["Name"],
                name,
            )
            # No URL with a password in it either (scheme://user:password@host).
            assert "@" not in value or "://" not in value, (container["Name"], entry)


def test_the_app_role_reads_and_writes_rows_but_cannot_touch_the_audit_log(
    stack: Stack,
) -> None:
    # As the web container connects: DATABASE_URL from its secret file.
    script = (
        "import psycopg\n"
        "url = open('/run/secrets/DATABASE_URL').read().strip()\n"
        "with psycopg.connect(url, autocommit=True) as c:\n"
        "    print('role', c.execute('select current_user').fetchone()[0])\n"
        "    print('users', c.execute('select count(*) from users').fetchone()[0])\n"
        "    for sql in ('ALTER TABLE audit_logs DISABLE TRIGGER ALL',\n"
        "                'TRUNCATE audit_logs', 'DROP TABLE audit_logs',\n"
        "                'CREATE TABLE intruder (id int)'):\n"
        "        try:\n"
        "            c.execute(sql)\n"
        "            print('ALLOWED', sql)\n"
        "        except psycopg.errors.InsufficientPrivilege as e:\n"
        "            print('refused', sql)\n"
    )
    result = stack.compose("exec", "-T", "web", "python", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "role nexus_app"
    assert lines[1].startswith("users ")
    assert int(lines[1].removeprefix("users ")) >= 1  # the admin (and anyone registered)
    assert lines[2:] == [
        "refused ALTER TABLE audit_logs DISABLE TRIGGER ALL",
        "refused TRUNCATE audit_logs",
        "refused DROP TABLE audit_logs",
        "refused CREATE TABLE intruder (id int)",
    ]


def test_containers_run_as_configured(stack: Stack) -> None:
    (web,) = _inspect(stack.compose("ps", "--quiet", "web").stdout.strip())
    assert web["Config"]["StopTimeout"] == 40  # above gunicorn's 30 s drain
    assert web["Config"]["User"] == "10001:10001"
    assert web["HostConfig"]["ReadonlyRootfs"] is True
    bindings = web["HostConfig"]["PortBindings"]["5000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]
    logs = stack.compose("logs", "--no-color", "web").stdout
    assert "Permission denied" not in logs
    assert "Control socket listening at /tmp/gunicorn.ctl" in logs


def test_make_down_then_make_up_keeps_the_data(stack: Stack) -> None:
    down = stack.make("down")
    assert down.returncode == 0, down.stderr
    assert stack.containers() == []
    up = stack.make("up")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert _get(f"{stack.url}/healthz") == (200, HEALTHY)
    _login(stack)  # the admin made before the restart is still there


def test_make_up_again_while_running_is_a_no_op_that_still_answers(stack: Stack) -> None:
    again = stack.make("up")
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout  # no new secrets
    assert _get(f"{stack.url}/healthz") == (200, HEALTHY)


def test_lost_secrets_with_existing_data_are_refused_before_anything_starts(
    stack: Stack,
) -> None:
    directory = stack.root / "data" / "secrets"
    kept = directory.with_name("secrets.kept")
    directory.rename(kept)
    try:
        result = stack.make("up")
        assert result.returncode != 0
        assert "already holds a database" in result.stderr
        assert "docker compose down --volumes" in result.stderr
        assert not directory.exists()  # no new passwords were invented
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        kept.rename(directory)


def test_changed_passwords_fail_fast_with_the_migration_log_and_a_hint(stack: Stack) -> None:
    directory = stack.root / "data" / "secrets"
    original = {name: (directory / name).read_text() for name in SECRET_NAMES}
    stack.compose("stop", "--timeout", "20", "migrate", "web", "worker")
    try:
        (directory / "POSTGRES_PASSWORD").write_text("not-the-password\n")
        (directory / "MIGRATION_DATABASE_URL").write_text(
            "postgresql://nexus:not-the-password@postgres:5432/nexus\n"
        )
        result = stack.make("up")
        assert result.returncode != 0
        assert "the migrations failed" in result.stderr
        assert "password authentication failed" in result.stderr
        assert "Restore the old files" in result.stderr
    finally:
        for name, text in original.items():
            (directory / name).write_text(text)
    restored = stack.make("up")
    assert restored.returncode == 0, restored.stderr


def test_the_image_runs_on_a_read_only_root_and_carries_no_tooling(stack: Stack) -> None:
    port = free_port()
    name = f"{stack.env['COMPOSE_PROJECT_NAME']}-readonly"
    secret = "r" * 48
    started = subprocess.run(
        [
            "docker", "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp",
            "--publish", f"127.0.0.1:{port}:5000",
            "--env", "DATABASE_URL=postgresql://nobody@127.0.0.1:1/none",
            "--env", "REDIS_URL=redis://127.0.0.1:1/0",
            "--env", f"NEXUS_SECRET_KEY={secret}", "--env", f"NEXUS_JWT_SECRET={secret}",
            "--env", f"NEXUS_INTERNAL_SECRET={secret}",
            "nexus:local",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/livez")[0] == 200, timeout=60)
        # No database or Redis here: the readiness probe says so, and does not crash.
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 503
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        output = logs.stdout + logs.stderr
        assert "Read-only file system" not in output
        assert "Permission denied" not in output
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)
    probe = subprocess.run(
        [
            "docker", "run", "--rm", "--entrypoint", "sh", "nexus:local", "-c",
            "ls /app/src; command -v gcc cc pip || true; "
            "python -c 'import pip' 2>/dev/null && echo has-pip || true",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == ["nexus"]  # not nexus_dev, no compiler, no installer
