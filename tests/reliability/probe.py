"""A latency prober in a process of its own: ``GET`` a path every interval, print the timings.

The load tests measure ``/auth/me`` while dozens of client threads flood
the server. Timed from a thread among those, a probe's latency would
include the wait for the client's own GIL (up to one switch interval per
busy thread), which is the test's cost, not the server's. Run apart, the
probe measures what a separate client of the service would see.

    python -m tests.reliability.probe PORT PATH TOKEN SECONDS INTERVAL [COUNT]

prints ``{"latency_ms": [...], "statuses": {...}, "errors": [...]}``.
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def probe(port: int, path: str, token: str, seconds: float, interval: float, count: int) -> None:
    latency: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (count <= 0 or len(latency) + len(errors) < count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            reply = connection.getresponse()
            reply.read()
        except OSError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        finally:
            connection.close()
        latency.append((time.perf_counter() - started) * 1000)
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
        time.sleep(interval)
    json.dump({"latency_ms": latency, "statuses": statuses, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    port, path, token, seconds, interval, *rest = sys.argv[1:]
    probe(int(port), path, token, float(seconds), float(interval), int(rest[0]) if rest else 0)
