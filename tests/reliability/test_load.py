"""Load: many clients mixing registration, login, /me, refresh and job enqueues; then a login flood.

Clients retry a 503 after its ``Retry-After``, as a well-behaved client
does: a burst of registrations finds the password hashing full and is told
to come back. Asserted: no 5xx but those 503s, every answer complete, every
accepted job finished, and
under a login flood the logins that find hashing saturated get a fast 503
with ``Retry-After``. Reported (``data/reliability/``), not asserted: p50
and p99 per endpoint, and ``/auth/me``'s p99 during the flood against idle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.reliability.conftest import ADMIN, Stack, percentile, report, scale
from tests.support import REPO_ROOT, wait_for

PASSWORD = "violet-tangerine-kettle-42"


class Tally:
    """Latencies and statuses per endpoint, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.errors: list[str] = []

    def call_patiently(self, stack: Stack, name: str, *args: Any, **kwargs: Any) -> Any:
        """``call``, and after a 503 wait ``Retry-After`` and try again, as a client should."""
        for _ in range(30):
            reply = self.call(stack, name, *args, **kwargs)
            if reply is None or reply.status != 503:
                return reply
            time.sleep(float(reply.headers.get("retry-after", "1")))
        return reply

    def call(self, stack: Stack, name: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            reply = stack.request(*args, **kwargs)
        except OSError as exc:
            with self.lock:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        with self.lock:
            self.latency[name].append((time.perf_counter() - started) * 1000)
            self.statuses[name][reply.status] += 1
        return reply

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "requests": len(values),
                "p50_ms": round(percentile(values, 0.5), 1),
                "p99_ms": round(percentile(values, 0.99), 1),
                "statuses": dict(self.statuses[name]),
            }
            for name, values in sorted(self.latency.items())
        }

    def five_hundreds(self) -> dict[str, int]:
        return {
            f"{name} {status}": count
            for name, statuses in self.statuses.items()
            for status, count in statuses.items()
            if status >= 500 and status != 503
        }


def test_mixed_load_no_5xx_and_every_accepted_job_finishes(stack: Stack) -> None:
    clients = int(scale(40, 200))
    seconds = scale(10, 30)
    admin = stack.login(*ADMIN)["access_token"]
    tally = Tally()
    jobs: list[str] = []
    deadline = time.monotonic() + seconds

    def enqueuer() -> None:
        """An admin enqueueing canaries the whole time (no sign-up to wait for)."""
        while time.monotonic() < deadline:
            queued = tally.call(
                stack, "enqueue", "POST", "/api/v1/admin/jobs/canary", {"seconds": 0},
                token=admin,
            )  # fmt: skip
            if queued is not None and queued.status == 202:
                with tally.lock:
                    jobs.append(queued.json()["data"]["id"])
            time.sleep(scale(0.2, 0.05))

    def client(number: int) -> None:
        if number % 10 == 0:
            enqueuer()
            return
        email = f"load-{number}-{uuid.uuid4().hex[:6]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        tally.call_patiently(stack, "register", "POST", "/api/v1/auth/register", credentials)
        reply = tally.call_patiently(stack, "login", "POST", "/api/v1/auth/login", credentials)
        if reply is None or reply.status != 200:
            return
        tokens = reply.json()["data"]
        while time.monotonic() < deadline:
            tally.call(stack, "me", "GET", "/api/v1/auth/me", token=tokens["access_token"])
            if number % 7 == 0:
                refreshed = tally.call(
                    stack, "refresh", "POST", "/api/v1/auth/refresh", token=tokens["refresh_token"]
                )
                if refreshed is not None and refreshed.status == 200:
                    tokens = refreshed.json()["data"]

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))

    def all_finished() -> bool:
        for job_id in jobs:
            reply = stack.request("GET", f"/api/v1/jobs/{job_id}", token=admin)
            if reply.json()["data"]["status"] != "finished":
                return False
        return True

    finished = wait_for(all_finished, timeout=120, interval=1, raises=False)
    report(
        "load",
        {"clients": clients, "seconds": seconds, "jobs": len(jobs), **tally.summary()},
    )
    assert tally.errors == []  # no dropped connection, no half body
    assert tally.five_hundreds() == {}
    assert jobs  # the mix did enqueue
    assert finished, "an accepted job did not finish"


def probe_me(stack: Stack, token: str, *, seconds: float, count: int = 0) -> dict[str, Any]:
    """``/auth/me`` timed from a process of its own (``probe.py`` says why)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.probe", str(stack.port), "/api/v1/auth/me",
         token, str(seconds), "0.02", str(count)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_login_flood_gets_fast_503s_and_spares_requests_that_hash_nothing(
    stack: Stack,
) -> None:
    flooders = 40
    seconds = scale(6, 12)
    me_token = stack.login(*ADMIN)["access_token"]
    idle = probe_me(stack, me_token, seconds=60, count=int(scale(100, 300)))
    flood = Tally()
    deadline = time.monotonic() + seconds

    def flooder(_: int) -> None:
        while time.monotonic() < deadline:
            flood.call(
                stack,
                "login",
                "POST",
                "/api/v1/auth/login",
                {"email": ADMIN[0], "password": "not-the-password-at-all"},
            )

    with ThreadPoolExecutor(max_workers=flooders + 1) as pool:
        probed = pool.submit(probe_me, stack, me_token, seconds=seconds)
        list(pool.map(flooder, range(flooders)))
        during = probed.result()
    logins = flood.statuses["login"]
    idle_p99 = percentile(idle["latency_ms"], 0.99)
    flood_p99 = percentile(during["latency_ms"], 0.99)
    report(
        "login_flood",
        {
            "flooders": flooders,
            "seconds": seconds,
            "me_idle_p99_ms": round(idle_p99, 1),
            "me_flood_p50_ms": round(percentile(during["latency_ms"], 0.5), 1),
            "me_flood_p99_ms": round(flood_p99, 1),
            "me_flood_requests": len(during["latency_ms"]),
            "me_p99_budget_ms": round(max(2 * idle_p99, 100.0), 1),
            **flood.summary(),
        },
    )
    assert flood.errors == []
    assert flood.five_hundreds() == {}
    assert set(logins) <= {401, 503}
    assert logins.get(503, 0) > 0, "hashing never reported saturation"
    assert during["errors"] == []
    assert during["statuses"] == {"200": len(during["latency_ms"])}
