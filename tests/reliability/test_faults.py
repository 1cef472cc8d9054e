"""Faults under load: ``kill -9`` PostgreSQL, Redis, a gunicorn worker and the RQ worker.

While clients call ``/auth/me`` and enqueue canaries, each part of the stack
is killed and brought back. Clients may see 503s or dropped connections,
never another 5xx, a complete-looking answer with half its body, or a wait
past their timeout; once everything is back, every canary that was accepted
(202) finishes. Recovery times are reported, not asserted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from tests.reliability.conftest import ADMIN, Stack, report, scale
from tests.support import wait_for


def test_kill_9_on_each_part_gives_clean_errors_and_loses_nothing(stack: Stack) -> None:
    admin = stack.login(*ADMIN)["access_token"]
    outcomes: Counter[str] = Counter()
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        while not stop.is_set():
            try:
                if number % 3 == 0:
                    reply = stack.request(
                        "POST", "/api/v1/admin/jobs/canary", {"seconds": 0}, token=admin
                    )
                    if reply.status == 202:
                        with lock:
                            accepted.append(reply.json()["data"]["id"])
                else:
                    reply = stack.request("GET", "/api/v1/auth/me", token=admin)
                outcome = str(reply.status)
            except TimeoutError:
                outcome = "timeout"
            except OSError as exc:
                outcome = "half body" if "half a body" in str(exc) else "dropped"
            with lock:
                outcomes[outcome] += 1
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(int(scale(9, 30)))]
    for thread in threads:
        thread.start()
    recovery: dict[str, float] = {}
    try:
        time.sleep(2)
        for part in ("postgres", "redis", "web worker", "worker"):
            started = time.monotonic()
            if part == "web worker":
                stack.gunicorn_workers()[0].kill()  # the master starts another
            else:
                stack.kill(part)
                time.sleep(scale(2, 5))  # down for a while, under load
                stack.start(part)
            wait_for(stack.healthy, timeout=120, interval=0.2)
            recovery[part] = round(time.monotonic() - started, 2)
            time.sleep(scale(2, 5))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    pending = list(accepted)
    admin = stack.login(*ADMIN)["access_token"]  # a fresh token: the old one may have expired

    def all_finished() -> bool:
        while pending:
            reply = stack.request("GET", f"/api/v1/jobs/{pending[0]}", token=admin)
            assert reply.status == 200, reply.body
            if reply.json()["data"]["status"] != "finished":
                return False
            pending.pop(0)
        return True

    finished = wait_for(all_finished, timeout=180, interval=1, raises=False)
    report(
        "faults",
        {"recovery_s": recovery, "outcomes": dict(outcomes), "accepted_jobs": len(accepted)},
    )
    unclean = {k: v for k, v in outcomes.items() if k not in ("200", "202", "503", "dropped")}
    assert unclean == {}
    assert accepted
    assert finished, (
        f"canaries accepted (202) during the faults never finished: {pending}\n"
        + "\n".join(stack.job_trace(job_id, token=admin) for job_id in pending[:3])
    )
