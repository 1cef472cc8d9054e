"""Metrics in forked processes: a lock held by another thread at fork does not hang the child."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

from nexus.infrastructure import metrics


def test_a_child_forked_while_a_metric_lock_is_held_can_still_count() -> None:
    # As a worker's relay thread does when the worker forks a work horse.
    labelled = metrics.LOGINS.labels(result="fork-test")
    held = [metrics.DB_POOL_CHECKED_OUT._value._lock, labelled._value._lock, metrics.LOGINS._lock]
    for lock in held:
        lock.acquire()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock:
            # the very case this test makes.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: each of these would wait for ever on an inherited lock
            metrics.DB_POOL_CHECKED_OUT.inc()
            metrics.LOGINS.labels(result="fork-test").inc()
            metrics.LOGINS.labels(result="another").inc()
            os._exit(0)
    finally:
        for lock in held:
            lock.release()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung on a metric lock held at fork")


def test_a_dead_processes_live_gauges_are_dropped_at_scrape_and_its_counts_kept(
    tmp_path: Path,
) -> None:
    # granian has no child_exit hook: a scrape drops what dead workers left.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = os.getpid()
    names = [
        f"gauge_livesum_{dead.pid}.db",
        f"gauge_liveall_{dead.pid}.db",
        f"counter_{dead.pid}.db",
        f"gauge_livesum_{alive}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    metrics.reap_dead_processes(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead.pid}.db", f"gauge_livesum_{alive}.db"]
    )
