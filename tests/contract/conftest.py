"""A live server for the contract run (``tests/live.py``), with an admin and a member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live import LiveServer, live_server, post_json

ADMIN = "contract-admin@example.com"
MEMBER = "contract-member@example.com"
# Not the document's example password: the examples phase sends it to
# /auth/password and DELETE /auth/me, which would end the run's own accounts.
PASSWORD = "contract-sequoia-harbor-19"


@pytest.fixture
def server(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[LiveServer]:
    # Thousands of requests from one address, and a sign-in every 2 s: the
    # limits would answer most of them with 429 (their own tests are apart).
    with live_server(
        subprocess_env(fresh_database), tmp_path, admin=(ADMIN, PASSWORD), rate_limits=False
    ) as live:
        # The member signs up as anyone would.
        registered = post_json(
            f"{live.base_url}/api/v1/auth/register", {"email": MEMBER, "password": PASSWORD}
        )
        assert registered["data"]["email"] == MEMBER
        yield live
