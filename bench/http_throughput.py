"""HTTP throughput of Nexus against its peers, side by side: ``make bench``.

    .venv/bin/python bench/http_throughput.py [--rounds 3] [--seconds 10] [--processes 5]

Each contender serves ``GET /livez`` (the same JSON body), or ``/healthz``
(two round trips), with the same number of processes on loopback;
``wrk -t2 -c50 --latency`` (Debian's ``wrk``) loads one at a time, in an
order that alternates each round (A B C, C B A, …) so machine noise hits
all alike. Reported per contender: the median requests/s
over the rounds, p50 and p99 latency, the ratio to FastAPI + uvicorn and,
for Nexus, to plain Flask on the same server; written to
``data/bench/http.json`` and printed as a table.

- **nexus (gunicorn)**: ``make serve`` (``python -m nexus.serve``, gunicorn
  with ``gunicorn.conf.py``), ``WEB_CONCURRENCY`` processes, worker
  recycling off, rate limits off; ``/livez`` goes through every hook a real
  route does (request id, access line, metrics, headers). ``make dev``'s
  PostgreSQL and Redis, or ``DATABASE_URL``/``REDIS_URL``, must be
  reachable for the app to start.
- **nexus (granian)**: ``NEXUS_SERVER=granian make serve``, the same settings.
- **nexus /healthz (gunicorn)** against **flask /healthz (gunicorn)**: the
  readiness probe (PostgreSQL ``SELECT 1`` and Redis ``PING``) against a
  plain Flask app making the same round trips by hand
  (``bench/peers/flask_roundtrips.py``).
- **flask (gunicorn)**, **flask (granian)**: a plain Flask app on the same
  server packages and settings (granian's derived by ``nexus.serve``).
- **fastapi (uvicorn)**: FastAPI under uvicorn (``uvicorn[standard]``:
  httptools, uvloop), its handler a plain ``def`` (the baseline the ratios
  are taken against, as in the performance issue); **fastapi async
  (uvicorn)**: the same with ``async def``, FastAPI's fastest path. Both in
  ``.venv-bench`` (``bench/requirements-peers.txt``), never in the
  service's lock.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nexus.serve import granian_environment

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
OUT = ROOT / "data" / "bench" / "http.json"


@dataclass(frozen=True)
class Contender:
    name: str
    argv: list[str]
    env: dict[str, str]
    path: str = "/livez"


def _free_port() -> int:
    import socket  # noqa: PLC0415 - only here

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def contenders(processes: int) -> list[Contender]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "GRANIAN_"))}
    served = {
        **base,
        "WEB_CONCURRENCY": str(processes),
        "GUNICORN_MAX_REQUESTS": "0",
        "NEXUS_RATE_LIMITS_ENABLED": "false",
        "NEXUS_LOG_FORMAT": "json",
    }
    python = sys.executable
    gunicorn = str(Path(python).parent / "gunicorn")
    granian = str(Path(python).parent / "granian")
    return [
        # What `make serve` runs, and `NEXUS_SERVER=granian make serve`.
        Contender("nexus (gunicorn)", [python, "-m", "nexus.serve"],
                  {**served, "NEXUS_SERVER": "gunicorn"}),
        Contender("flask (gunicorn)",
                  [gunicorn, "--config", "gunicorn.conf.py", "bench.peers.flask_hello:app"],
                  served),
        Contender("nexus (granian)", [python, "-m", "nexus.serve"],
                  {**served, "NEXUS_SERVER": "granian"}),
        # The same granian settings as nexus.serve derives, for the plain app.
        Contender("flask (granian)", [granian, "bench.peers.flask_hello:app"],
                  {**served, "NEXUS_SERVER": "granian"}),
        # Readiness with its two round trips, against the same done by hand.
        Contender("nexus /healthz (gunicorn)", [python, "-m", "nexus.serve"],
                  {**served, "NEXUS_SERVER": "gunicorn"}, "/healthz"),
        Contender("flask /healthz (gunicorn)",
                  [gunicorn, "--config", "gunicorn.conf.py", "bench.peers.flask_roundtrips:app"],
                  served, "/healthz"),
        Contender("fastapi (uvicorn)",
                  [str(BENCH_VENV / "bin" / "uvicorn"), "bench.peers.fastapi_hello:app",
                   "--workers", str(processes), "--log-level", "warning", "--no-access-log"],
                  base),
        Contender("fastapi async (uvicorn)",
                  [str(BENCH_VENV / "bin" / "uvicorn"), "bench.peers.fastapi_hello:async_app",
                   "--workers", str(processes), "--log-level", "warning", "--no-access-log"],
                  base),
    ]  # fmt: skip


def _environment(contender: Contender, port: int) -> dict[str, str]:
    env = {**contender.env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    if contender.argv[0].endswith("granian"):
        env.update(granian_environment(env))
        del env["GRANIAN_LOG_CONFIG"]  # the plain app logs nothing of its own
    return env


def _up(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def run_one(contender: Contender, seconds: int) -> dict[str, float]:
    port = _free_port()
    argv = list(contender.argv)
    env = _environment(contender, port)
    if "uvicorn" in argv[0]:
        argv += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _up(port, contender.path):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{contender.name} did not start (exit {server.poll()})")
            time.sleep(0.2)
        subprocess.run(  # warm up every process
            ["wrk", "-t2", "-c50", "-d2s", f"http://127.0.0.1:{port}{contender.path}"],
            capture_output=True, check=True,
        )  # fmt: skip
        done = subprocess.run(
            ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency",
             f"http://127.0.0.1:{port}{contender.path}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return _parse(done.stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _parse(output: str) -> dict[str, float]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"\s50%\s+(\S+)", output)
    p99 = re.search(r"\s99%\s+(\S+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rps is None or p50 is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if not (BENCH_VENV / "bin" / "uvicorn").exists():
        raise SystemExit("the peers' environment is missing: make bench creates it")
    sides = contenders(args.processes)
    results: dict[str, list[dict[str, float]]] = {side.name: [] for side in sides}
    for round_number in range(args.rounds):
        order = sides if round_number % 2 == 0 else list(reversed(sides))
        for side in order:
            results[side.name].append(run_one(side, args.seconds))
    rps = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    baseline = rps["fastapi (uvicorn)"]
    table = {
        name: {
            "rps": round(rps[name]),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "vs_fastapi": round(rps[name] / baseline, 2),
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "rounds": [round(r["rps"]) for r in runs],
        }
        for name, runs in results.items()
    }
    # Nexus against plain Flask on the same server: what Nexus's own work costs.
    for nexus, flask in [
        ("nexus (gunicorn)", "flask (gunicorn)"),
        ("nexus (granian)", "flask (granian)"),
        ("nexus /healthz (gunicorn)", "flask /healthz (gunicorn)"),
    ]:
        table[nexus]["vs_flask_same_server"] = round(rps[nexus] / rps[flask], 2)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "processes": args.processes,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "results": table,
    }
    OUT.write_text(json.dumps(summary, indent=2) + "\n")
    width = max(len(name) for name in table)
    header = f"{'contender':<{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs FastAPI':>10}"
    print(f"{header} {'vs Flask':>9}")
    for name, row in table.items():
        same = row.get("vs_flask_same_server", "")
        print(
            f"{name:<{width}} {row['rps']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8} "
            f"{row['vs_fastapi']:>10} {same:>9}"
        )
    print(f"written to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
