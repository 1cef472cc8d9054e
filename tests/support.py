"""Helpers shared by tests that drive real processes and servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import psutil
import structlog
import structlog.testing
from flask import Flask
from structlog.typing import EventDict

FLASK = [sys.executable, "-m", "flask", "--app", "nexus"]
REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.1, raises: bool = True
) -> T:
    """Poll ``predicate`` until it returns something truthy; after ``timeout`` s, fail
    (or, with ``raises=False``, return the last falsy answer for the caller to explain)."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            if not raises:
                return last
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
    # Redis.close() leaves a pool it was handed open; disconnect it explicitly.
    app.extensions["nexus.redis"].connection_pool.disconnect()
    app.extensions["nexus.family_cache"].redis.connection_pool.disconnect()
    for collector in app.extensions.get("nexus.metrics_collectors", []):
        redis = getattr(collector, "redis", None)
        if redis is not None:
            redis.connection_pool.disconnect()


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command from the checkout and capture its output (a minute at most)."""
    return subprocess.run(
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``flask --app nexus worker`` in a child process, its output captured."""
    return subprocess.Popen(
        [*FLASK, "worker"], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop_worker(worker: subprocess.Popen[bytes], *, timeout: float = 60) -> str:
    """SIGTERM the worker and return its output; killed if it does not exit in time."""
    try:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Only when a test is already failing: say what the worker was doing.
        worker.kill()
        output, _ = worker.communicate()
        tail = output.decode(errors="replace")[-4000:]
        raise AssertionError(
            f"the worker ignored SIGTERM for {timeout} s; its output:\n{tail}"
        ) from None
    return output.decode(errors="replace")


def stop_workers(workers: list[subprocess.Popen[bytes]], *, timeout: float = 30) -> None:
    """A test's teardown: stop the workers still running, close the pipes of the dead ones."""
    for worker in workers:
        if worker.poll() is None:
            stop_worker(worker, timeout=timeout)
        elif worker.stdout is not None and not worker.stdout.closed:
            worker.communicate()  # closes its output pipe


def signal_tree(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal a server and every process it forked (PostgreSQL backends leave its group)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(process.pid)
        for proc in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)


def checkout(target: Path, *, venv: bool = True) -> Path:
    """A copy of the working tree as a fresh clone has it: no .env, no data, no caches.

    Tracked and new (not ignored) files, with their modes and times kept. With
    ``venv``, ``.venv`` links to the running interpreter's, so ``make`` targets
    find it up to date and run this code, not a reinstall.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if not source.is_file():  # deleted in the working tree, not yet committed
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    if venv:
        (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        # The venv running this test is up to date by definition. Were the
        # copies newer than its stamp, make would reinstall it from the copy
        # and repoint its editable install at a temp directory.
        stamp = Path(sys.prefix) / ".installed"
        if stamp.exists():
            older = stamp.stat().st_mtime_ns - 1_000_000_000
            for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
                os.utime(target / name, ns=(older, older))
    return target


def interrupt(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """What Ctrl-C does: SIGINT to the whole process group, then wait for the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=timeout)
