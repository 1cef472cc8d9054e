"""Argon2id cost per verify at candidate parameters, as ratios to a baseline.

    .venv/bin/python bench/argon2_params.py [--rounds 15]

Each round verifies once at every parameter set, interleaved, so machine
noise hits all of them alike; the report gives the median milliseconds and
the ratio to the baseline (a SHA-256 of the same password, i.e. ~no cost).
Use it to pick NEXUS_ARGON2_* for your hardware (docs/decisions/0012).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from argon2 import PasswordHasher

CANDIDATES = {
    "OWASP minimum (t=2, m=19MiB, p=1)": PasswordHasher(
        time_cost=2, memory_cost=19_456, parallelism=1
    ),
    "Nexus default = OWASP first (t=1, m=46MiB, p=1)": PasswordHasher(
        time_cost=1, memory_cost=47_104, parallelism=1
    ),
    "argon2-cffi default (t=3, m=64MiB, p=4)": PasswordHasher(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    password = "correct horse battery staple"
    hashes = {name: hasher.hash(password) for name, hasher in CANDIDATES.items()}
    timings: dict[str, list[float]] = {name: [] for name in ["baseline (sha256)", *CANDIDATES]}
    for _ in range(args.rounds):
        started = time.perf_counter()
        hashlib.sha256(password.encode()).hexdigest()
        timings["baseline (sha256)"].append(time.perf_counter() - started)
        for name, hasher in CANDIDATES.items():
            started = time.perf_counter()
            hasher.verify(hashes[name], password)
            timings[name].append(time.perf_counter() - started)
    baseline = statistics.median(timings["baseline (sha256)"])
    print(f"{'parameters':42} {'median ms':>10} {'x baseline':>12}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:42} {median * 1000:10.1f} {median / baseline:12.0f}")


if __name__ == "__main__":
    main()
