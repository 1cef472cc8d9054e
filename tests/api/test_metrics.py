"""``/metrics``: what each metric counts, bounded labels, the scraper's token, Redis down."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis import Redis

from nexus.accounts.models import User
from nexus.config import Environment, Settings
from nexus.infrastructure import metrics
from nexus.infrastructure.queue import get_queues
from nexus.jobs.worker import NexusSimpleWorker
from nexus_dev.local_services import free_port
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem
from tests.jobs.test_durable import enqueue
from tests.support import dispose

PROMTOOL = shutil.which("promtool")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_template_method_and_status(
    client: FlaskClient, member: Tokens
) -> None:
    route = "/api/v1/libraries/<uuid:library_id>"
    before = value("nexus_http_requests_total", route=route, method="GET", status="404")
    unmatched = value("nexus_http_requests_total", route="<unmatched>", method="OTHER",
                      status="405")  # fmt: skip
    for _ in range(3):
        client.get(f"/api/v1/libraries/{uuid.uuid4()}", headers=member.headers)
    client.open("/no/such/path", method="BREW")
    assert value("nexus_http_requests_total", route=route, method="GET", status="404") == before + 3
    assert value("nexus_http_requests_total", route="<unmatched>", method="OTHER",
                 status="405") in (unmatched + 1, unmatched)  # fmt: skip
    text = client.get("/metrics").get_data(as_text=True)
    # Raw paths and ids never become label values.
    assert "/api/v1/libraries/<uuid:library_id>" in text
    assert not re.search(r"/api/v1/libraries/[0-9a-f]{8}-", text)
    assert value("nexus_http_request_duration_seconds_count", route=route, method="GET") >= 3


def test_logins_token_refusals_and_problems_are_counted(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    make_user("ada@example.com")
    counts = {
        "success": value("nexus_logins_total", result="success"),
        "failure": value("nexus_logins_total", result="failure"),
        "invalid": value("nexus_token_refusals_total", reason="invalid"),
        "missing": value("nexus_token_refusals_total", reason="missing"),
        "problem": value("nexus_problems_total", code="E_UNAUTHENTICATED"),
    }
    client.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    client.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "nope-nope"})
    client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not.a.token"})
    client.get("/api/v1/auth/me")
    assert value("nexus_logins_total", result="success") == counts["success"] + 1
    assert value("nexus_logins_total", result="failure") == counts["failure"] + 1
    assert value("nexus_token_refusals_total", reason="invalid") == counts["invalid"] + 1
    assert value("nexus_token_refusals_total", reason="missing") == counts["missing"] + 1
    assert value("nexus_problems_total", code="E_UNAUTHENTICATED") == counts["problem"] + 3


def test_a_job_is_counted_where_it_runs(app: Flask, db_session: object, redis: Redis) -> None:
    before = {
        "enqueued": value("nexus_jobs_enqueued_total", job="tests.add"),
        "started": value("nexus_jobs_started_total", job="tests.add"),
        "finished": value("nexus_jobs_finished_total", job="tests.add"),
        "failed": value("nexus_jobs_failed_total", job="tests.explode"),
    }
    with app.app_context():
        enqueue("tests.add", a=1, b=2)
        enqueue("tests.explode")
        queues = metrics_queues(app)
    assert value("nexus_jobs_enqueued_total", job="tests.add") == before["enqueued"] + 1
    NexusSimpleWorker(queues, connection=redis, app=app).work(burst=True)
    assert value("nexus_jobs_started_total", job="tests.add") == before["started"] + 1
    assert value("nexus_jobs_finished_total", job="tests.add") == before["finished"] + 1
    assert value("nexus_jobs_failed_total", job="tests.explode") == before["failed"] + 1
    assert value("nexus_job_duration_seconds_count", job="tests.add") >= 1


def metrics_queues(app: Flask) -> list[object]:
    with app.app_context():
        return list(get_queues().ordered)


def test_queue_state_is_read_at_each_scrape(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        enqueue("tests.add", a=1, b=2)
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'^nexus_queue_depth\{queue="default"\} 1\.0$', text, re.M), text
    assert re.search(r'^nexus_queue_oldest_job_age_seconds\{queue="default"\} \d', text, re.M)
    assert "nexus_relay_pending_jobs 0.0" in text
    assert "nexus_redis_up 1.0" in text


def test_with_redis_down_redis_up_reads_0_and_limits_failing_open_are_counted(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(rate_limits_enabled=True, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    before = value("nexus_rate_limit_fail_open_total")
    for _ in range(3):
        assert client.get("/api/v1/problems").status_code == 200
    assert value("nexus_rate_limit_fail_open_total") >= before + 3
    text = client.get("/metrics").get_data(as_text=True)
    assert "nexus_redis_up 0.0" in text
    dispose(app)


def test_in_prod_only_the_scraper_with_the_internal_secret_reads_metrics(
    make_app: Callable[..., Flask], settings: Settings
) -> None:
    secret = "internal-" + "s" * 40
    app = make_app()
    # The app's settings as in prod (an app built for prod would switch the
    # whole process to cached JSON loggers, and the suite's log capture off).
    app.extensions["nexus.settings"] = settings.model_copy(
        update={"env": Environment.PROD, "internal_secret": SecretStr(secret)}
    )
    client = app.test_client()
    assert_problem(client.get("/metrics"), 403, "E_INTERNAL_ONLY")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 49})
    assert_problem(wrong, 403, "E_INTERNAL_ONLY")
    right = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert right.status_code == 200
    assert right.mimetype == "text/plain"
    assert "nexus_http_requests_total" in right.get_data(as_text=True)


def test_every_metric_has_help_and_promtool_accepts_the_output(client: FlaskClient) -> None:
    client.get("/livez")
    text = client.get("/metrics").get_data(as_text=True)
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    helped = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    nexus = {name for name in families if name.startswith("nexus_")}
    assert nexus <= helped
    assert len(nexus) >= 25
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_catalogue_lists_every_metric_once(app: Flask) -> None:
    exported = [
        getattr(metrics, name)._name
        for name in dir(metrics)
        if name.isupper() and hasattr(getattr(metrics, name), "_name")
    ]
    assert len(exported) == len(set(exported))
    assert all(name.startswith("nexus_") for name in exported)
