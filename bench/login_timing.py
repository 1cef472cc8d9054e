"""Login timing, black-box: unknown e-mail vs wrong password, interleaved.

    .venv/bin/python bench/login_timing.py http://127.0.0.1:5000 EMAIL [--rounds 15]

EMAIL must be an existing account. Each round sends one login for an unknown
address and one with a wrong password for EMAIL, alternating which goes
first, so machine noise hits both alike. Reports the medians, their ratio
(1.00 means indistinguishable), and a successful login's time for scale.
Needs the server running (make dev); sends only to the URL given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.error
import urllib.request


def _login(base: str, email: str, password: str) -> tuple[int, float]:
    request = urllib.request.Request(  # noqa: S310 - the URL given on the command line
        f"{base}/api/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - given URL
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base_url")
    parser.add_argument("email")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    unknown: list[float] = []
    wrong: list[float] = []
    for round_number in range(args.rounds):
        attempts = [
            (unknown, f"nobody-{round_number}@example.invalid"),
            (wrong, args.email),
        ]
        if round_number % 2:
            attempts.reverse()
        for bucket, email in attempts:
            status, elapsed = _login(base, email, "not-the-password-0")
            if status != 401:
                raise SystemExit(f"expected 401 for {email}, got {status}")
            bucket.append(elapsed)
    a, b = statistics.median(unknown), statistics.median(wrong)
    print(f"unknown e-mail  median {a:7.1f} ms over {len(unknown)}")
    print(f"wrong password  median {b:7.1f} ms over {len(wrong)}")
    print(f"ratio           {max(a, b) / min(a, b):7.2f} (1.00 = indistinguishable)")
    password = os.environ.get("NEXUS_BENCH_PASSWORD")
    if password:
        status, elapsed = _login(base, args.email, password)
        print(f"successful login {elapsed:6.1f} ms (status {status})")


if __name__ == "__main__":
    main()
