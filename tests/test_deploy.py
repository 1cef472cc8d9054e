"""deploy/: the Prometheus config and alerts pass promtool, a real Prometheus scrapes with them.

Debian's ``prometheus`` package (the server and ``promtool``, 2.42) runs
these; ``.ci/run`` installs it. Without it they skip, except in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from nexus_dev.local_services import free_port, stop_process
from tests.live import http_status
from tests.support import REPO_ROOT, wait_for

DEPLOY = REPO_ROOT / "deploy"
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing; .ci/run installs Debian's prometheus")
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return found


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    """deploy/prometheus, copied with the secret file its scrape config names."""
    target = tmp_path / "prometheus"
    shutil.copytree(DEPLOY / "prometheus", target)
    (target / "nexus-internal-secret").write_text("not-a-real-secret\n")
    return target


def test_the_scrape_config_and_the_alerts_pass_promtool(prometheus_dir: Path) -> None:
    promtool = _tool("promtool")
    for argv in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        done = subprocess.run(
            [promtool, *argv], cwd=prometheus_dir, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _exported(app_metrics: str) -> set[str]:
    """Every series name /metrics can export, counters' and histograms' suffixes included."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", app_metrics, re.M):
        names.add(name)
        if kind == "counter":
            names.add(f"{name}_total")
        if kind == "histogram":
            names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_every_dashboard_and_alert_query_names_a_metric_nexus_exports(client: Any) -> None:
    exported = _exported(client.get("/metrics").get_data(as_text=True))
    dashboard = json.loads((DEPLOY / "grafana" / "nexus-dashboard.json").read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    queries += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(queries) > 20
    for query in queries:
        named = set(re.findall(r"\b(nexus_[a-z_]+)\b", query))
        assert named or "up{" in query, query
        assert named <= exported, (query, named - exported)


@pytest.fixture
def scraped_stack(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> Iterator[dict[str, int]]:
    """gunicorn with four processes and a worker serving its metrics, on the test servers."""
    web, worker_port = free_port(), free_port()
    env = subprocess_env(
        fresh_database,
        GUNICORN_BIND=f"127.0.0.1:{web}",
        WEB_CONCURRENCY="4",
        GUNICORN_THREADS="2",
        NEXUS_LOG_LEVEL="WARNING",
        NEXUS_WORKER_METRICS_PORT=str(worker_port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc"),
    )
    with (tmp_path / "web.log").open("wb") as log:
        gunicorn = subprocess.Popen(
            [BIN / "gunicorn", "--config", "gunicorn.conf.py", "nexus.wsgi:app"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    worker_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [BIN / "flask", "--app", "nexus", "worker"],
            cwd=REPO_ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{web}/livez") == 200, timeout=60)
        wait_for(lambda: http_status(f"http://127.0.0.1:{worker_port}/metrics") == 200, timeout=60)
        yield {"web": web, "worker": worker_port, "master": gunicorn.pid}
    finally:
        stop_process(worker, grace=30)
        stop_process(gunicorn, grace=30)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _sample(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_real_prometheus_scrapes_web_and_worker_and_counts_add_up_over_processes(
    scraped_stack: dict[str, int], prometheus_dir: Path, tmp_path: Path
) -> None:
    promtool, prometheus = _tool("promtool"), _tool("prometheus")
    web, worker = scraped_stack["web"], scraped_stack["worker"]
    livez = 'nexus_http_requests_total{method="GET",route="/livez",status="200"}'
    before = _sample(_get(f"http://127.0.0.1:{web}/metrics"), livez)
    for _ in range(60):  # spread over the four processes by the kernel
        assert http_status(f"http://127.0.0.1:{web}/livez") == 200
    after = _get(f"http://127.0.0.1:{web}/metrics")
    assert _sample(after, livez) == before + 60
    # A worker process killed and replaced: its counts are neither lost nor doubled.
    master = psutil.Process(scraped_stack["master"])
    victim = master.children()[0]
    victim.kill()
    wait_for(
        lambda: (
            len(master.children()) == 4 and victim.pid not in [c.pid for c in master.children()]
        ),
        timeout=60,
    )
    assert _sample(_get(f"http://127.0.0.1:{web}/metrics"), livez) == before + 60
    for _ in range(10):
        assert http_status(f"http://127.0.0.1:{web}/livez") == 200
    after = _get(f"http://127.0.0.1:{web}/metrics")
    assert _sample(after, livez) == before + 70
    for text in (after, _get(f"http://127.0.0.1:{worker}/metrics")):
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr

    # deploy/'s scrape config, pointed at this stack and scraping every second.
    config = yaml.safe_load((prometheus_dir / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    targets = {"nexus-web": f"127.0.0.1:{web}", "nexus-worker": f"127.0.0.1:{worker}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [prometheus, f"--config.file={prometheus_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/-/ready") == 200, timeout=60)

        def both_up() -> bool:
            found = json.loads(_get(f"{api}/targets"))["data"]["activeTargets"]
            return {t["labels"]["job"]: t["health"] for t in found} == {
                "nexus-web": "up",
                "nexus-worker": "up",
            }

        wait_for(both_up, timeout=60, interval=0.5)

        def query(expr: str) -> list[dict[str, Any]]:
            url = f"{api}/query?query={urllib.request.quote(expr)}"
            result: list[dict[str, Any]] = json.loads(_get(url))["data"]["result"]
            return result

        wait_for(lambda: bool(query(livez)), timeout=30, interval=0.5)
        assert float(query(livez)[0]["value"][1]) >= before + 60
        assert query("nexus_redis_up")[0]["value"][1] == "1"
        assert {r["metric"]["queue"] for r in query("nexus_queue_depth")} == {
            "high", "default", "low",
        }  # fmt: skip
        # The alerting rules loaded with the config.
        rules = json.loads(_get(f"{api}/rules"))["data"]["groups"][0]["rules"]
        assert {rule["name"] for rule in rules} >= {"NexusRedisDown", "NexusHigh5xxRatio"}
    finally:
        stop_process(server, grace=10)
