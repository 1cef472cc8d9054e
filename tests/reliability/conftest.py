"""A real stack for the reliability suite: its own PostgreSQL and Redis, gunicorn, a worker.

Its own servers, because the fault tests kill them. gunicorn runs with
``gunicorn.conf.py`` as ``make serve`` does (JSON logs, the default number of
processes), the worker as ``flask --app nexus worker``; all on loopback.
``NEXUS_RELIABILITY=full`` (``make reliability``) runs the long form; the
default is the short form CI runs. Measurements are printed and written to
``data/reliability/<test>.json``; no test asserts a duration.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis import Redis

from nexus import migrations
from nexus_dev.local_services import (
    PostgresServer,
    RedisServer,
    find_postgres,
    find_redis,
    free_port,
    identity,
    stop_process,
)
from tests.support import REPO_ROOT, wait_for

FULL = os.environ.get("NEXUS_RELIABILITY") == "full"
BIN = Path(sys.executable).parent
ADMIN = ("admin@example.com", "violet-tangerine-kettle-42")


def scale(short: float, full: float) -> float:
    return full if FULL else short


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stack:
    port: int
    base: Path
    env: dict[str, str]
    pg: PostgresServer
    redis: RedisServer
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # --- HTTP -------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 15,
    ) -> Response:
        """One request on a fresh connection; raises OSError if the server drops it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            sent = dict(headers or {})
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                sent.setdefault("Content-Type", "application/json")
            if token:
                sent["Authorization"] = f"Bearer {token}"
            connection.request(method, path, body=data, headers=sent)
            reply = connection.getresponse()
            try:
                payload = reply.read()
            except http.client.IncompleteRead as exc:
                # The server went away mid-answer; Content-Length told the
                # client so: a dropped connection, not a half body taken whole.
                raise ConnectionResetError(f"dropped mid-body: {exc!r}") from None
            declared = reply.getheader("Content-Length")
            if declared is not None and int(declared) != len(payload):
                raise OSError(f"half a body: {len(payload)} of {declared} bytes")
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, payload)
        finally:
            connection.close()

    def login(self, email: str, password: str) -> dict[str, Any]:
        reply = self.request("POST", "/api/v1/auth/login", {"email": email, "password": password})
        assert reply.status == 200, reply.body
        tokens: dict[str, Any] = reply.json()["data"]
        return tokens

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=5).status == 200
        except OSError:
            return False

    # --- processes ----------------------------------------------------------------------
    def start(self, name: str) -> None:
        if name == "postgres":
            argv, extra = self.pg.command(), identity(self.pg.user)
        elif name == "redis":
            argv, extra = self.redis.command(), {}
        elif name == "web":
            argv, extra = (
                [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "nexus.wsgi:app"],
                {},
            )
        else:
            argv, extra = [str(BIN / "flask"), "--app", "nexus", "worker"], {}
        with (self.base / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                # The worker logs each job's steps (INFO): a failure message quotes them.
                env={**self.env, "NEXUS_LOG_LEVEL": "INFO"}
                if name == "worker"
                else self.env
                if name == "web"
                else None,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **extra,  # type: ignore[arg-type]
            )
        if name == "postgres":
            self.pg.wait_ready(process=self.processes[name])
        elif name == "redis":
            self.redis.wait_ready(process=self.processes[name])

    def kill(self, name: str) -> None:
        """``kill -9`` (the postmaster, or Redis, or the worker and its horse)."""
        process = self.processes[name]
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if name == "postgres":  # its backends would linger on the port
            for child in children:
                child.kill()
            psutil.wait_procs(children, timeout=10)

    def gunicorn_workers(self) -> list[psutil.Process]:
        return psutil.Process(self.processes["web"].pid).children()

    def job_trace(self, job_id: str, *, token: str) -> str:
        """What the API, RQ and the worker's log say about a job: for a failure message."""
        row = self.request("GET", f"/api/v1/jobs/{job_id}", token=token).json()["data"]
        rq = Redis.from_url(self.redis.url())
        fields = {
            k.decode(): v.decode(errors="replace")
            for k, v in rq.hgetall(f"rq:job:{job_id}").items()
        }
        origin = fields.get("origin", "default")
        places = {
            key: "yes"
            for key in (f"rq:queue:{origin}", f"rq:queue:{origin}:intermediate")
            if rq.lpos(key, job_id) is not None
        } | {
            key.decode(): "yes"
            for key in rq.scan_iter("rq:*registry*")
            if any(job_id in member.decode() for member in rq.zrange(key, 0, -1))
        }
        rq.close()
        lines = [line for line in self.log("worker").splitlines() if job_id in line]
        return (
            f"job {job_id}: row {row}\n  rq status={fields.get('status')} "
            f"origin={origin} in={sorted(places)}\n  worker log:\n    " + "\n    ".join(lines[-15:])
        )

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The stack of one test module; its ``STACK_ENV`` (if any) changes the environment."""
    base = tmp_path_factory.mktemp("reliability")
    base.chmod(0o755)
    # Durable, as production is: with synchronous_commit off, kill -9 loses commits
    # that were already answered (202) - the very thing the fault test checks.
    pg = PostgresServer(find_postgres(), base / "postgres", free_port(), durable=True)
    pg.initialise()
    redis = RedisServer(find_redis(), base / "redis", free_port(), durable=False)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("NEXUS_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    stack = Stack(port=port, base=base, env=env, pg=pg, redis=redis)
    stack.start("postgres")
    stack.start("redis")
    pg.create_database("nexus")
    migrations.upgrade(pg.url("nexus"))
    env.update(
        {
            "NEXUS_ENV": "test",
            "DATABASE_URL": pg.url("nexus"),
            "REDIS_URL": redis.url(),
            "FLASK_SKIP_DOTENV": "1",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "NEXUS_LOG_FORMAT": "json",
            "NEXUS_LOG_LEVEL": "WARNING",
            # Recovery within the test's patience.
            "NEXUS_ABANDONED_JOB_SECONDS": "6",
            # Hundreds of clients from 127.0.0.1, and floods of wrong passwords
            # for one account: what these tests measure is the stack under
            # them, not the limits (tests/reliability/test_limits.py is).
            "NEXUS_RATE_LIMITS_ENABLED": "false",
            "NEXUS_LOGIN_LOCKOUT_FAILURES": "0",
            **getattr(request.module, "STACK_ENV", {}),
        }
    )
    created = subprocess.run(
        [str(BIN / "flask"), "--app", "nexus", "create-admin", ADMIN[0]],
        cwd=REPO_ROOT,
        env={**env, "NEXUS_ADMIN_PASSWORD": ADMIN[1]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    stack.start("web")
    stack.start("worker")
    try:
        wait_for(stack.healthy, timeout=60, interval=0.3)
        yield stack
    finally:
        for name in ("worker", "web", "redis", "postgres"):
            if name in stack.processes:
                stop_process(stack.processes[name], sig=signal.SIGINT, grace=30)


def report(name: str, results: dict[str, Any]) -> None:
    """Print a measurement and keep it in data/reliability/<name>.json."""
    out = REPO_ROOT / "data" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    results = {"scale": "full" if FULL else "short", "at": time.time(), **results}
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\n{name}: {json.dumps(results, sort_keys=True)}")  # noqa: T201


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
