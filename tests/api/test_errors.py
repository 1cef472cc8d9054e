"""Every error is an RFC 9457 problem document with a stable code and the request id."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from nexus.api.errors import PROBLEM_JSON, ErrorCode, catalogue, code_for
from nexus.domains import DOMAINS
from nexus.errors import DomainError
from nexus_dev.local_services import free_port
from tests.support import capture_logs

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def assert_problem(response: TestResponse, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json(force=True)
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/api/v1/problems/{code}"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return dict(body)


def test_every_code_has_its_documented_status(api: FlaskClient) -> None:
    core = {
        "E_INVALID_REQUEST": 400,
        "E_NAME_INVALID": 400,
        "E_UNAUTHENTICATED": 401,
        "E_FORBIDDEN": 403,
        "E_INTERNAL_ONLY": 403,
        "E_NOT_FOUND": 404,
        "E_METHOD_NOT_ALLOWED": 405,
        "E_CONFLICT": 409,
        "E_PAYLOAD_TOO_LARGE": 413,
        "E_UNSUPPORTED_MEDIA_TYPE": 415,
        "E_RATE_LIMITED": 429,
        "E_INTERNAL": 500,
        "E_UNAVAILABLE": 503,
    }
    shipped = {"E_LAST_ADMIN_FORBIDDEN": 403, "E_AUTH_UNAVAILABLE": 503}  # accounts'
    declared = {code.name: code.status for domain in DOMAINS for code in domain.codes}
    with api.application.app_context():
        listed = {name: code.status for name, code in catalogue().items()}
    assert listed == {**core, **declared}  # the core's and the listed domains', no others
    assert shipped.items() <= listed.items()


def test_unknown_route_is_404(api: FlaskClient) -> None:
    body = assert_problem(api.get("/api/v1/nothing-here"), 404, "E_NOT_FOUND")
    assert body["instance"] == "/api/v1/nothing-here"


def test_wrong_method_is_405_with_allow(api: FlaskClient) -> None:
    response = api.delete("/healthz")
    assert_problem(response, 405, "E_METHOD_NOT_ALLOWED")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}


def test_unhandled_exception_is_500_without_detail(api: FlaskClient) -> None:
    with capture_logs() as logs:
        response = api.get("/api/v1/test/boom", headers={"X-Request-ID": "trace-me-123"})
    body = assert_problem(response, 500, "E_INTERNAL")
    assert body["request_id"] == "trace-me-123"
    text = response.get_data(as_text=True)
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    [logged] = [entry for entry in logs if entry["event"] == "http.unhandled_exception"]
    assert logged["log_level"] == "error"
    assert isinstance(logged["exc_info"], RuntimeError)  # logged with its traceback


def test_other_client_errors_keep_their_status(api: FlaskClient) -> None:
    assert_problem(api.get("/api/v1/test/teapot"), 418, "E_INVALID_REQUEST")


def test_401_comes_before_validation(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/guarded", data="not json", content_type="text/plain")
    assert_problem(response, 401, "E_UNAUTHENTICATED")


def test_body_over_the_limit_is_413(api: FlaskClient) -> None:
    limit = api.application.extensions["nexus.settings"].max_body_bytes
    response = api.post(
        "/api/v1/test/items", data=b"x" * (limit + 1), content_type="application/json"
    )
    body = assert_problem(response, 413, "E_PAYLOAD_TOO_LARGE")
    assert str(limit) in str(body["detail"])


def test_413_even_where_the_route_never_reads_the_body(api: FlaskClient) -> None:
    limit = api.application.extensions["nexus.settings"].max_body_bytes
    assert_problem(api.get("/livez", data=b"x" * (limit + 1)), 413, "E_PAYLOAD_TOO_LARGE")


def test_problem_types_are_documented(api: FlaskClient) -> None:
    with api.application.app_context():
        codes = list(catalogue().values())
    for code in codes:
        response = api.get(code.type_uri)
        assert response.status_code == 200
        assert response.get_json()["data"] == {
            "code": code.name,
            "status": code.status,
            "title": code.title,
            "description": code.description,
            "type": code.type_uri,
        }


def test_unknown_problem_type_is_404(api: FlaskClient) -> None:
    assert_problem(api.get("/api/v1/problems/E_NOPE"), 404, "E_NOT_FOUND")


def test_problem_catalogue_pages_through_every_code(api: FlaskClient) -> None:
    seen: list[str] = []
    url = "/api/v1/problems?limit=5"
    while True:
        body = api.get(url).get_json()
        assert body["meta"]["limit"] == 5
        seen += [entry["code"] for entry in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
        url = f"/api/v1/problems?limit=5&cursor={cursor}"
    with api.application.app_context():
        assert seen == sorted(catalogue())


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%%%", "cursor"),
        ("bogus=1", "bogus"),
    ],
)
def test_bad_pagination_is_400(api: FlaskClient, query: str, field: str) -> None:
    body = assert_problem(api.get(f"/api/v1/problems?{query}"), 400, "E_INVALID_REQUEST")
    assert [error["field"] for error in body["errors"]] == [field]  # type: ignore[attr-defined]


def _subclasses(cls: type[DomainError]) -> set[type[DomainError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_domain_error_maps_to_a_client_or_outage_code(app: Flask) -> None:
    # The app imported every domain: each error a service can raise has a
    # code below 500 or a 503, never the unhandled 500.
    errors = {cls for cls in _subclasses(DomainError) if cls.__module__.startswith("nexus.")}
    assert {"EmailTaken", "LastAdmin", "AuthUnavailable", "JobNotFound"} <= {
        cls.__name__ for cls in errors
    }
    with app.app_context():
        for cls in errors:
            code = code_for(cls("x"))
            assert code.status < 500 or code.status == 503, cls
    with app.app_context():
        assert code_for(DomainError("x")) is ErrorCode.E_INTERNAL  # a bare one is a bug


def test_postgresql_down_is_a_503_outage_not_a_500(
    make_app: Callable[..., Flask], db_session: Session
) -> None:
    down = make_app(database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    with capture_logs() as logs:
        response = down.test_client().post(
            "/api/v1/auth/register",
            json={"email": "new@example.com", "password": "violet-tangerine-kettle-42"},
        )
    body = assert_problem(response, 503, "E_UNAVAILABLE")
    assert response.headers["Retry-After"] == "5"
    assert "postgres" not in str(body["detail"]).lower()  # nothing about the servers leaks
    assert [log["event"] for log in logs if log["log_level"] == "error"] == []
    assert any(log["event"] == "http.dependency_unavailable" for log in logs)


def test_redis_down_where_a_request_needs_it_is_a_503(api: FlaskClient) -> None:
    response = api.get("/api/v1/test/redis-down")
    assert_problem(response, 503, "E_UNAVAILABLE")
    assert response.headers["Retry-After"] == "5"


def test_a_connection_that_dies_at_teardown_does_not_replace_the_response(
    api: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dead(_self: Session) -> None:
        raise OperationalError("SELECT 1", {}, Exception("terminating connection"))

    monkeypatch.setattr(Session, "close", dead)
    with capture_logs() as logs:
        response = api.get("/api/v1/test/db-touch")  # its session is closed at teardown
    assert response.status_code == 200  # the view's answer, kept
    assert response.get_json() == {"data": {"one": 1}}
    assert any(log["event"] == "database.close_failed" for log in logs)
