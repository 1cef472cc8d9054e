"""A real server for the contract run: gunicorn as in production, on the session's servers.

A database of its own, migrated; an admin made by ``flask --app nexus
create-admin`` and a member by ``POST /api/v1/auth/register``, as a user
would. Hashing is cheap and may wait for a slot, so the fuzzer meets the
API's answers rather than the host's hashing capacity.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nexus_dev.local_services import free_port, stop_process
from tests.support import REPO_ROOT, wait_for

BIN = Path(sys.executable).parent
ADMIN = "contract-admin@example.com"
MEMBER = "contract-member@example.com"
# Not the document's example password: the examples phase sends it to
# /auth/password and DELETE /auth/me, which would end the run's own accounts.
PASSWORD = "contract-sequoia-harbor-19"


@dataclass(frozen=True)
class Server:
    base_url: str
    log: Path
    env: dict[str, str]


@pytest.fixture
def server(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[Server]:
    port = free_port()
    env = subprocess_env(
        fresh_database,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        NEXUS_LOG_FORMAT="json",
        NEXUS_LOG_LEVEL="WARNING",
        NEXUS_ARGON2_MEMORY_KIB="8192",
        NEXUS_HASH_WAIT_SECONDS="10",
        NEXUS_HASH_SLOTS_DIR=str(tmp_path / "hash-slots"),
        NEXUS_ADMIN_PASSWORD=PASSWORD,
    )
    created = subprocess.run(
        [BIN / "flask", "--app", "nexus", "create-admin", ADMIN],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [BIN / "gunicorn", "--config", "gunicorn.conf.py", "nexus.wsgi:app"],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{base_url}/livez") == 200, timeout=60, interval=0.3)
        _post(f"{base_url}/api/v1/auth/register", {"email": MEMBER, "password": PASSWORD})
        yield Server(base_url=base_url, log=log, env=env)
    finally:
        stop_process(process, grace=30)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except OSError:
        return 0


def _post(url: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 201
