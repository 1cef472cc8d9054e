"""Request validation: every way a body or query can be wrong gets a clear 400/415."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient

from tests.api.test_errors import assert_problem


def test_valid_body_reaches_the_view(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/items", json={"name": "bolt", "quantity": 3})
    assert response.status_code == 201
    assert response.get_json() == {"data": {"name": "bolt", "quantity": 3}}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bolt", "quantity": "3"},  # a string is not an integer
        {"name": "bolt", "quantity": True},  # nor is a boolean
        {"name": "bolt", "quantity": 2.5},  # nor a fraction
    ],
)
def test_json_types_are_taken_strictly(api: FlaskClient, body: dict[str, object]) -> None:
    """What the document says a field is, it must be: no quiet conversions."""
    response = api.post("/api/v1/test/items", json=body)
    assert_problem(response, 400, "E_INVALID_REQUEST")
    # ("name" has a code of its own: a number there is an invalid name.)
    named = api.post("/api/v1/test/items", json={"name": 42, "quantity": 3})
    assert_problem(named, 400, "E_NAME_INVALID")


def test_malformed_json_is_400_with_position(api: FlaskClient) -> None:
    response = api.post(
        "/api/v1/test/items", data='{"name": "bolt",', content_type="application/json"
    )
    body = assert_problem(response, 400, "E_INVALID_REQUEST")
    [error] = body["errors"]  # type: ignore[misc]
    assert error["field"] == "body"
    assert error["message"].startswith("Malformed JSON:")
    assert "line 1" in error["message"]


def test_non_utf8_body_is_400(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/items", data=b"\xff\xfe", content_type="application/json")
    body = assert_problem(response, 400, "E_INVALID_REQUEST")
    assert body["errors"] == [{"field": "body", "message": "The body is not valid UTF-8."}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api: FlaskClient, content_type: str | None) -> None:
    response = api.post(
        "/api/v1/test/items", data='{"name": "bolt", "quantity": 1}', content_type=content_type
    )
    assert_problem(response, 415, "E_UNSUPPORTED_MEDIA_TYPE")


def test_json_with_suffix_media_type_is_accepted(api: FlaskClient) -> None:
    response = api.post(
        "/api/v1/test/items",
        data='{"name": "bolt", "quantity": 1}',
        content_type="application/merge-patch+json",
    )
    assert response.status_code == 201


def test_schema_failures_list_every_field(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/items", json={"quantity": 0, "colour": "red"})
    body = assert_problem(response, 400, "E_INVALID_REQUEST")
    fields = {error["field"]: error["message"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {
        "name": "Field required",
        "quantity": "Input should be greater than or equal to 1",
        "colour": "Extra inputs are not permitted",
    }
    assert body["detail"] == "The request has 3 problems; see errors."


def test_body_that_is_not_an_object_is_400(api: FlaskClient) -> None:
    body = assert_problem(api.post("/api/v1/test/items", json=[1, 2]), 400, "E_INVALID_REQUEST")
    assert body["errors"][0]["field"] == "body"  # type: ignore[index]


def test_field_specific_code(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/items", json={"name": "", "quantity": 1})
    body = assert_problem(response, 400, "E_NAME_INVALID")
    assert body["errors"][0]["field"] == "name"  # type: ignore[index]


def test_query_lists_and_defaults(api: FlaskClient) -> None:
    body = api.get("/api/v1/test/items?tag=a&tag=b").get_json()
    assert body == {"data": [{"tags": ["a", "b"]}], "meta": {"next_cursor": None, "limit": 50}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 10_000 + "]" * 10_000, "The JSON is nested too deeply."),
        ('{"name": "bolt", "quantity": ' + "9" * 5_000 + "}", "Malformed JSON:"),
    ],
    ids=["deep-nesting", "5000-digit-integer"],
)
def test_json_python_cannot_decode_is_a_400(api: FlaskClient, body: str, message: str) -> None:
    response = api.post("/api/v1/test/items", data=body, content_type="application/json")
    problem = assert_problem(response, 400, "E_INVALID_REQUEST")
    [error] = problem["errors"]  # type: ignore[misc]
    assert error["field"] == "body"
    assert error["message"].startswith(message)


def test_a_nul_character_in_a_body_string_is_a_400_naming_the_field(api: FlaskClient) -> None:
    response = api.post("/api/v1/test/items", json={"name": "bo\x00lt", "quantity": 1})
    problem = assert_problem(response, 400, "E_NAME_INVALID")  # the route's code for name
    assert problem["errors"] == [
        {"field": "name", "message": "Value error, must not contain NUL (\\u0000) characters"}
    ]


def test_a_nul_character_in_the_query_string_is_a_400(api: FlaskClient) -> None:
    response = api.get("/api/v1/test/items?tag=ok&tag=%00")
    problem = assert_problem(response, 400, "E_INVALID_REQUEST")
    assert problem["errors"][0]["field"] == "tag"  # type: ignore[index]


def test_a_chunked_body_over_the_limit_is_413_not_truncated(api: FlaskClient) -> None:
    limit = api.application.config["MAX_CONTENT_LENGTH"]
    head = b'{"name": "bolt", "quantity": 1}'
    body = head + b" " * (limit - len(head)) + b"garbage past the limit"
    response = api.post(
        "/api/v1/test/items",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},  # as a server with chunked input
    )
    assert_problem(response, 413, "E_PAYLOAD_TOO_LARGE")
    at_limit = head + b" " * (limit - len(head))
    response = api.post(
        "/api/v1/test/items",
        input_stream=io.BytesIO(at_limit),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 201  # exactly at the limit is fine
