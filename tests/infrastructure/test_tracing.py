"""Traces: a request and the job it enqueues are one trace; off, nothing is instrumented."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from flask import Flask
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.infrastructure import logging as nexus_logging
from nexus.infrastructure import tracing
from nexus.infrastructure.logging import add_trace_ids
from nexus.infrastructure.queue import get_queues
from nexus.jobs.models import Job
from nexus.jobs.worker import NexusSimpleWorker
from nexus_dev.local_services import free_port
from tests.accounts_fixtures import Tokens
from tests.live import live_server, sign_in
from tests.support import capture_logs, wait_for


@pytest.fixture
def traced(
    make_joined_app: Callable[..., Flask],
) -> Iterator[tuple[Flask, InMemorySpanExporter]]:
    app = make_joined_app()
    exporter = InMemorySpanExporter()
    tracing.install(app, exporter)
    try:
        yield app, exporter
    finally:
        tracing.uninstall(app)


def _ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def test_a_request_and_the_job_it_enqueues_are_one_trace(
    traced: tuple[Flask, InMemorySpanExporter], admin: Tokens, redis: Redis, db_session: Session
) -> None:
    app, exporter = traced
    client = app.test_client()
    answer = client.post("/api/v1/admin/jobs/canary", json={"seconds": 0}, headers=admin.headers)
    assert answer.status_code == 202
    row = db_session.scalar(select(Job).where(Job.name == "jobs.canary"))
    assert row is not None
    assert row.trace_parent is not None  # the context travels in the job's row
    with app.app_context():
        queues = get_queues().ordered
    NexusSimpleWorker(queues, connection=redis, app=app).work(burst=True)

    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    [job] = [s for s in spans if s.name == "job jobs.canary"]
    trace_id, server_span = _ids(server)
    assert server.attributes is not None
    assert server.attributes.get("http.route") == "/api/v1/admin/jobs/canary"
    assert job.kind == SpanKind.CONSUMER
    assert _ids(job)[0] == trace_id
    assert job.parent is not None
    assert job.parent.span_id == server_span  # enqueued inside the request's span
    # The job's own SQL is in the same trace, under the job's span.
    job_children = [s for s in spans if s.parent is not None and s.parent.span_id == _ids(job)[1]]
    assert any(s.attributes and "db.statement" in s.attributes for s in job_children) or any(
        s.attributes and s.attributes.get("db.system") == "postgresql" for s in job_children
    ), [s.name for s in job_children]


def test_with_tracing_on_every_log_line_names_its_trace_and_span(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, _exporter = traced
    assert add_trace_ids in nexus_logging._shared_processors()  # in the one chain, for all
    tracer = app.extensions[tracing.EXTENSION_KEY].get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "x"})
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in add_trace_ids(None, "info", {"event": "outside any span"})


def test_off_nothing_is_instrumented_and_jobs_carry_no_context(
    app: Flask, client: object, admin: Tokens, db_session: Session
) -> None:
    assert not tracing.enabled()
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    answer = app.test_client().post(
        "/api/v1/admin/jobs/canary", json={"seconds": 0}, headers=admin.headers
    )
    assert answer.status_code == 202
    row = db_session.scalar(select(Job).where(Job.name == "jobs.canary"))
    assert row is not None
    assert row.trace_parent is None
    assert "trace_id" not in add_trace_ids(None, "info", {"event": "untraced"})


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: decodes each export the way a collector does."""

    spans: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = next(
                a.value.string_value for a in resource.resource.attributes
                if a.key == "service.name"
            )  # fmt: skip
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    type(self).spans.append({
                        "service": service, "name": span.name, "trace": span.trace_id.hex(),
                        "id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "route": attributes.get("http.route"),
                    })  # fmt: skip
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        pass


def test_through_gunicorn_and_a_forking_worker_the_spans_reach_an_otlp_receiver(
    fresh_database: str, subprocess_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    _Receiver.spans = []
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = subprocess_env(
        fresh_database,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}",
        OTEL_SERVICE_NAME="nexus-test",
        OTEL_BSP_SCHEDULE_DELAY="200",  # export within a fraction of a second
    )
    admin = ("admin@example.com", "violet-tangerine-kettle-42")
    try:
        with live_server(env, tmp_path, admin=admin, worker=True) as live:
            token = sign_in(live.base_url, *admin)
            request = urllib.request.Request(
                f"{live.base_url}/api/v1/admin/jobs/canary",
                data=json.dumps({"seconds": 0}).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=15) as response:
                assert response.status == 202

            def joined() -> list[dict[str, Any]]:
                jobs = [s for s in _Receiver.spans if s["name"] == "job jobs.canary"]
                servers = [s for s in _Receiver.spans if s["route"] == "/api/v1/admin/jobs/canary"]
                return [j for j in jobs for s in servers if j["trace"] == s["trace"]]

            [job] = wait_for(joined, timeout=60, interval=0.3)
    finally:
        receiver.shutdown()
        receiver.server_close()
    [server] = [s for s in _Receiver.spans if s["route"] == "/api/v1/admin/jobs/canary"]
    assert job["parent"] == server["id"]
    assert {s["service"] for s in _Receiver.spans} == {"nexus-test"}
    # The job's SQL, traced in the forked work horse, arrived too, under the job.
    assert [s for s in _Receiver.spans if s["parent"] == job["id"]]


def test_with_tracing_on_the_access_line_names_the_requests_span(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    # The access line is written after the request's span has ended; it
    # still names it, so a slow request's line leads to its trace.
    app, exporter = traced
    with capture_logs() as logs:
        assert app.test_client().get("/livez").status_code == 200
    [server] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    [access] = [entry for entry in logs if entry["event"] == "http.request"]
    trace_id, span_id = _ids(server)
    assert access["trace_id"] == format(trace_id, "032x")
    assert access["span_id"] == format(span_id, "016x")
