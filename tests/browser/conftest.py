"""Headless Chromium (Debian's own, driven by Playwright) against a live Nexus with a worker.

Every request the page makes is recorded; a test fails if one leaves the
machine. ``NEXUS_CHROMIUM`` names another Chromium binary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from tests.live import LiveServer, live_server, sign_in

ADMIN = ("browser-admin@example.com", "browser-juniper-anchor-31")
CHROMIUM = os.environ.get("NEXUS_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Requests:
    """Every URL the page asked for, and those that were not this server's."""

    base_url: str
    seen: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.seen.append(request.url)

    @property
    def off_machine(self) -> list[str]:
        local = urlsplit(self.base_url).netloc
        return [
            url
            for url in self.seen
            if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != local
        ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set NEXUS_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # No sandbox: CI runs as root. No background networking: Chromium
            # would otherwise call home, and the test counts every request.
            args=["--no-sandbox", "--disable-background-networking", "--disable-sync"],
        )
        yield launched
        launched.close()


@pytest.fixture
def server(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[LiveServer]:
    env = subprocess_env(fresh_database)
    with live_server(env, tmp_path, admin=ADMIN, worker=True) as live:
        yield live


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[tuple[Page, Requests]]:
    context = browser.new_context(base_url=server.base_url)
    requests = Requests(server.base_url)
    context.on("request", requests.record)
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened, requests
    context.close()


def access_token(server: LiveServer) -> str:
    return sign_in(server.base_url, *ADMIN)
