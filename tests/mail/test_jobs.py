"""``mail.send`` against real SMTP servers: a slow relay, a worker killed mid-send."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from nexus.infrastructure.database import get_database
from nexus.mail.models import OutboundEmail
from nexus_dev.local_services import free_port
from nexus_dev.mailcatcher import Catcher
from tests.accounts_fixtures import PASSWORD
from tests.support import signal_tree, start_worker, stop_worker, wait_for


class SlowFirstCatcher(Catcher):
    """Keeps each message, then holds the first one's "250 OK" for a long while."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 1:
            await asyncio.sleep(30)  # the sender is killed while it waits for this
        return answer


def test_a_worker_killed_mid_send_delivers_the_message_duplicated_at_most_once(
    make_app: Callable[..., Flask],
    fresh_database: str,
    subprocess_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    port = free_port()
    catcher = SlowFirstCatcher()
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    settings = {"NEXUS_SMTP_PORT": str(port), "NEXUS_ABANDONED_JOB_SECONDS": "6"}
    app = make_app(database_url=fresh_database, smtp_port=port)
    client = app.test_client()
    client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    env = subprocess_env(fresh_database, **settings)
    worker = start_worker(env)
    try:
        # The relay has the message, and the worker waits for its "250 OK".
        catcher.wait(1, timeout=60)
        assert len(catcher.messages) == 1
        signal_tree(worker, signal.SIGKILL)  # the worker and its work horse
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()
        worker = start_worker(env)

        def sent() -> bool:
            with app.app_context(), get_database().sessionmaker() as session:
                row = session.scalar(select(OutboundEmail))
                return row is not None and row.sent_at is not None

        wait_for(sent, timeout=120, interval=0.5)
    finally:
        log = stop_worker(worker)
        controller.stop()
    # Accepted by the relay before the kill, so sent again by the retry: the
    # window the README names. Both copies have the same Message-ID.
    assert 1 <= len(catcher.messages) <= 2, log
    with app.app_context(), get_database().sessionmaker() as session:
        row_id = session.scalar(select(OutboundEmail.id))
    assert isinstance(row_id, uuid.UUID)
    assert {m["Message-ID"] for m in catcher.messages} == {f"<{row_id}@localhost>"}
