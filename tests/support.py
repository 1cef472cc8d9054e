"""Helpers shared by tests that drive real processes and servers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import structlog
import structlog.testing
from flask import Flask
from structlog.typing import EventDict

FLASK = [sys.executable, "-m", "flask", "--app", "nexus"]
REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], *, timeout: float, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def capture_logs() -> AbstractContextManager[list[EventDict]]:
    """structlog's ``capture_logs`` with the context variables merged in, as in production."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


def dispose(app: Flask) -> None:
    """Close an app's pooled connections (they would warn when garbage-collected)."""
    app.extensions["nexus.database"].engine.dispose()
    app.extensions["nexus.redis"].close()
