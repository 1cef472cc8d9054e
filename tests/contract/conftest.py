"""A live server for the contract run (``tests/live.py``), with an admin and a member."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, live_server

ADMIN = "contract-admin@example.com"
MEMBER = "contract-member@example.com"
# Not the document's example password: the examples phase sends it to
# /auth/password and DELETE /auth/me, which would end the run's own accounts.
PASSWORD = "contract-sequoia-harbor-19"


@pytest.fixture
def server(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[LiveServer]:
    with live_server(subprocess_env(fresh_database), tmp_path, admin=(ADMIN, PASSWORD)) as live:
        # The member signs up as anyone would.
        request = urllib.request.Request(
            f"{live.base_url}/api/v1/auth/register",
            data=json.dumps({"email": MEMBER, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            assert response.status == 201
        yield live
