"""Request ids, the one access line per request, and limits on a real HTTP server."""

from __future__ import annotations

import http.client
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import structlog
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from werkzeug.serving import BaseWSGIServer, make_server

from nexus.api.request_context import new_request_id
from nexus.infrastructure import context
from tests.support import capture_logs


def test_well_formed_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/livez", headers={"X-Request-ID": "abc-123.def:9"})
    assert response.headers["X-Request-ID"] == "abc-123.def:9"


@pytest.mark.parametrize("offered", ["", "has space", "x" * 129, 'quote"d', "<script>"])
def test_malformed_request_id_is_replaced(client: FlaskClient, offered: str) -> None:
    response = client.get("/livez", headers={"X-Request-ID": offered})
    generated = response.headers["X-Request-ID"]
    assert generated != offered
    assert len(generated) == 36  # a UUID


def test_exactly_one_access_line_per_request(client: FlaskClient) -> None:
    with capture_logs() as logs:
        client.get("/healthz", headers={"X-Request-ID": "req-1"})
        client.get("/api/v1/missing", headers={"X-Request-ID": "req-2"})
    access = [entry for entry in logs if entry["event"] == "http.request"]
    assert len(access) == 2
    first, second = access
    assert first["request_id"] == "req-1"
    assert first["method"] == "GET"
    assert first["route"] == "/healthz"
    assert first["path"] == "/healthz"
    assert first["status"] == 200
    assert first["duration_ms"] >= 0
    assert "user_id" not in first
    assert second["status"] == 404
    assert second["route"] is None


def test_access_line_carries_the_user_when_known(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    user = uuid.uuid4()

    @app.before_request
    def _pretend_authenticated() -> None:
        context.bind(user_id=user)  # what authentication does

    with capture_logs() as logs:
        app.test_client().get("/livez")
        app.test_client().get("/livez")
    first, second = [entry for entry in logs if entry["event"] == "http.request"]
    assert first["user_id"] == second["user_id"] == str(user)
    assert first["request_id"] != second["request_id"]


def test_every_line_of_a_request_carries_its_id(client: FlaskClient) -> None:
    with capture_logs() as logs:
        client.get("/api/v1/problems/E_NOPE", headers={"X-Request-ID": "joined-up"})
    assert logs
    assert all(entry.get("request_id") == "joined-up" for entry in logs)


@pytest.fixture
def live_server(app: Flask) -> Iterator[BaseWSGIServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_oversized_body_gets_a_413_document_not_a_reset(live_server: BaseWSGIServer) -> None:
    limit = 1_048_576
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/api/v1/problems",
            body=b"{" + b" " * (limit * 2) + b"}",
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert body["code"] == "E_PAYLOAD_TOO_LARGE"
    assert body["request_id"] == response.getheader("X-Request-ID")


def test_nothing_a_request_binds_outlives_it(make_app: Callable[..., Flask]) -> None:
    # gunicorn's and granian's threads serve request after request: what one
    # binds into the log context or its scope must not reach the next.
    app = make_app()
    calls = iter([True, False])

    @app.before_request
    def _bind_on_first_only() -> None:
        if next(calls):
            structlog.contextvars.bind_contextvars(tenant="acme")
            context.bind(user_id=uuid.uuid4())

    client = app.test_client()
    with capture_logs() as logs:
        client.get("/livez")
        client.get("/livez")
    first, second = [entry for entry in logs if entry["event"] == "http.request"]
    assert first["tenant"] == "acme"
    assert "user_id" in first
    assert "tenant" not in second
    assert "user_id" not in second
    assert context.user_id() is None  # nor the caller's context


def test_generated_request_ids_are_version_4_uuids_unique_across_forked_workers() -> None:
    # gunicorn and granian fork their workers from one process: each must
    # draw its own ids, not repeat its siblings'. Bare os.fork (no pool: a
    # pool's threads in a forked test process can deadlock).
    ids: list[str] = []
    for _ in range(3):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: draw, hand over, leave at once
            os.close(read_end)
            os.write(write_end, " ".join(new_request_id() for _ in range(200)).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as drawn:
            ids.extend(drawn.read().decode().split())
        os.waitpid(pid, 0)
    assert len(set(ids)) == len(ids) == 600
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == request_id


def test_livez_goes_through_every_hook_a_real_route_does(client: FlaskClient) -> None:
    # make bench measures /livez as Nexus's cheapest route: it must pay for
    # what every route does, or the figure would flatter it.
    counted = REGISTRY.get_sample_value(
        "nexus_http_requests_total", {"route": "/livez", "method": "GET", "status": "200"}
    )
    with capture_logs() as logs:
        response = client.get("/livez", headers={"X-Request-ID": "livez-1"})
    assert response.get_json() == {"status": "ok"}
    assert response.headers["X-Request-ID"] == "livez-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    [access] = [entry for entry in logs if entry["event"] == "http.request"]
    assert access["route"] == "/livez"
    assert access["request_id"] == "livez-1"
    assert (
        REGISTRY.get_sample_value(
            "nexus_http_requests_total", {"route": "/livez", "method": "GET", "status": "200"}
        )
        == (counted or 0) + 1
    )
