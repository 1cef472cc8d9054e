"""One cursor format for every list: signed, bound to its list and its filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from nexus.accounts.models import User
from tests.accounts_fixtures import Tokens


def _get(client: FlaskClient, url: str, tokens: Tokens) -> tuple[int, Any]:
    response = client.get(url, headers=tokens.headers)
    return response.status_code, response.get_json()


def _refused(status: int, body: Any) -> bool:
    return bool(
        status == 400
        and body["code"] == "E_INVALID_REQUEST"
        and body["errors"] == [{"field": "cursor", "message": "Invalid cursor."}]
    )


def test_pages_follow_the_cursor_and_cover_the_list_once(
    client: FlaskClient, admin: Tokens, make_user: Callable[..., User]
) -> None:
    for n in range(5):
        make_user(f"member{n}@example.com")
    seen: list[str] = []
    url = "/api/v1/admin/users?limit=2&role=member"
    while url:
        status, body = _get(client, url, admin)
        assert status == 200, body
        seen += [user["email"] for user in body["data"]]
        cursor = body["meta"]["next_cursor"]
        url = f"/api/v1/admin/users?limit=2&role=member&cursor={cursor}" if cursor else ""
    # Each once. (Made in one transaction, they share created_at: the id breaks the tie.)
    assert sorted(seen) == [f"member{n}@example.com" for n in range(5)]


def test_a_cursor_only_works_for_its_own_list_and_filters(
    client: FlaskClient, admin: Tokens, make_user: Callable[..., User]
) -> None:
    for n in range(3):
        make_user(f"member{n}@example.com")
    _, body = _get(client, "/api/v1/admin/users?limit=1&role=member", admin)
    cursor = body["meta"]["next_cursor"]
    assert cursor

    # The same list and filters, even with another page size: fine.
    status, _ = _get(client, f"/api/v1/admin/users?limit=5&role=member&cursor={cursor}", admin)
    assert status == 200
    # Other filters on the same list.
    status, body = _get(client, f"/api/v1/admin/users?role=admin&cursor={cursor}", admin)
    assert _refused(status, body)
    status, body = _get(client, f"/api/v1/admin/users?cursor={cursor}", admin)
    assert _refused(status, body)
    # Another list altogether.
    for other in ("/api/v1/admin/audit-logs", "/api/v1/admin/jobs", "/api/v1/problems"):
        status, body = _get(client, f"{other}?cursor={cursor}", admin)
        assert _refused(status, body), other


def test_an_edited_or_made_up_cursor_is_refused(
    client: FlaskClient, admin: Tokens, make_user: Callable[..., User]
) -> None:
    for n in range(2):
        make_user(f"member{n}@example.com")
    _, body = _get(client, "/api/v1/admin/users?limit=1", admin)
    cursor: str = body["meta"]["next_cursor"]
    payload, _, signature = cursor.rpartition(".")
    edited = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature
    for forged in (edited, "not-a-cursor", "eyJzIjoiIiwiayI6WzFdfQ", payload + ".AAAA"):
        status, body = _get(client, f"/api/v1/admin/users?cursor={forged}", admin)
        assert _refused(status, body), forged


def test_a_nul_in_any_list_filter_is_a_400_not_a_database_error(
    client: FlaskClient, admin: Tokens
) -> None:
    for url in (
        "/api/v1/admin/users?email_prefix=%00",
        "/api/v1/admin/audit-logs?action=a%00b",
        "/api/v1/admin/jobs?name=%00",
    ):
        status, body = _get(client, url, admin)
        assert status == 400, (url, body)
        assert body["code"] == "E_INVALID_REQUEST"
