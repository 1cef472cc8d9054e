"""A live Nexus for tests that talk to it as a client does: gunicorn as in production.

Used by the contract run (schemathesis) and the browser tests: a database of
its own, an admin made by ``flask --app nexus create-admin`` as an operator
would, gunicorn with ``gunicorn.conf.py``, and, when asked, a worker.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_dev.local_services import free_port, stop_process
from tests.support import REPO_ROOT, start_worker, stop_worker, wait_for

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    log: Path
    env: dict[str, str]


@contextlib.contextmanager
def live_server(
    env: dict[str, str],
    tmp_path: Path,
    *,
    admin: tuple[str, str],
    worker: bool = False,
    rate_limits: bool = True,
) -> Iterator[LiveServer]:
    """gunicorn (two processes) on ``env``'s database and Redis, with ``admin`` created.

    ``rate_limits=False`` for a client that sends more from one address than
    any real one would (a fuzzer).
    """
    port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "NEXUS_LOG_FORMAT": "json",
        "NEXUS_LOG_LEVEL": "WARNING",
        # Cheap hashes that wait for a slot: clients meet the API's answers,
        # not the host's hashing capacity.
        "NEXUS_ARGON2_MEMORY_KIB": "8192",
        "NEXUS_HASH_WAIT_SECONDS": "10",
        "NEXUS_HASH_SLOTS_DIR": str(tmp_path / "hash-slots"),
        "NEXUS_RATE_LIMITS_ENABLED": "true" if rate_limits else "false",
    }
    created = subprocess.run(
        [BIN / "flask", "--app", "nexus", "create-admin", admin[0]],
        cwd=REPO_ROOT, env={**env, "NEXUS_ADMIN_PASSWORD": admin[1]},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [BIN / "gunicorn", "--config", "gunicorn.conf.py", "nexus.wsgi:app"],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    workers = [start_worker(env)] if worker else []
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_status(f"{base_url}/livez") == 200, timeout=60, interval=0.3)
        yield LiveServer(base_url=base_url, log=log, env=env)
    finally:
        for running in workers:
            stop_worker(running)
        stop_process(process, grace=30)


def http_status(url: str) -> int:
    """The status of ``GET url``, or 0 if nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except OSError:
        return 0


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST url`` with a JSON body, as a client does; the answer's JSON (HTTPError if not 2xx)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def sign_in(base_url: str, email: str, password: str) -> str:
    """An access token from ``POST /api/v1/auth/login``."""
    token: str = post_json(f"{base_url}/api/v1/auth/login", {"email": email, "password": password})[
        "data"
    ]["access_token"]
    return token
