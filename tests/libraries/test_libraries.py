"""Libraries and members through the API: names, the default library, roles, the last admin."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from nexus.audit.models import AuditLog
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem

API = "/api/v1/libraries"


def _create(client: FlaskClient, who: Tokens, name: str = "Reading group") -> dict[str, Any]:
    response = client.post(API, json={"name": name}, headers=who.headers)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()["data"]
    return body


def _add(client: FlaskClient, admin: Tokens, library: str, email: str, role: str = "member") -> Any:
    return client.post(
        f"{API}/{library}/members", json={"email": email, "role": role}, headers=admin.headers
    )


def _user_id(client: FlaskClient, who: Tokens) -> str:
    user_id: str = client.get("/api/v1/auth/me", headers=who.headers).get_json()["data"]["id"]
    return user_id


def test_a_new_account_lists_its_default_library_first_then_what_it_makes(
    client: FlaskClient, member: Tokens
) -> None:
    [default] = client.get(API, headers=member.headers).get_json()["data"]
    assert (default["name"], default["is_default"], default["role"]) == (
        "My library",
        True,
        "admin",
    )
    made = _create(client, member, "  Reading group  ")
    assert (made["name"], made["is_default"], made["role"]) == ("Reading group", False, "admin")
    # A page at a time, each library once.
    first = client.get(f"{API}?limit=1", headers=member.headers).get_json()
    second = client.get(
        f"{API}?limit=1&cursor={first['meta']['next_cursor']}", headers=member.headers
    ).get_json()
    assert second["meta"]["next_cursor"] is None
    paged = [library["id"] for library in first["data"] + second["data"]]
    assert sorted(paged) == sorted([default["id"], made["id"]])
    assert client.get(f"{API}/{made['id']}", headers=member.headers).get_json()["data"] == made


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, 42, None])
def test_a_bad_name_is_400_e_name_invalid(client: FlaskClient, member: Tokens, name: Any) -> None:
    response = client.post(API, json={"name": name}, headers=member.headers)
    body = assert_problem(response, 400, "E_NAME_INVALID")
    assert body["errors"][0]["field"] == "name"  # type: ignore[index]


def test_a_name_of_100_characters_is_fine_and_renaming_trims(
    client: FlaskClient, member: Tokens
) -> None:
    library = _create(client, member, "é" * 100)
    renamed = client.patch(
        f"{API}/{library['id']}", json={"name": " Shelf "}, headers=member.headers
    )
    assert renamed.status_code == 200
    assert renamed.get_json()["data"]["name"] == "Shelf"
    blank = client.patch(f"{API}/{library['id']}", json={"name": " "}, headers=member.headers)
    assert_problem(blank, 400, "E_NAME_INVALID")


def test_the_default_library_can_be_neither_renamed_nor_deleted(
    client: FlaskClient, member: Tokens
) -> None:
    [default] = client.get(API, headers=member.headers).get_json()["data"]
    renamed = client.patch(f"{API}/{default['id']}", json={"name": "x"}, headers=member.headers)
    assert_problem(renamed, 403, "E_DEFAULT_LIBRARY_FORBIDDEN")
    deleted = client.delete(f"{API}/{default['id']}", headers=member.headers)
    assert_problem(deleted, 403, "E_DEFAULT_LIBRARY_FORBIDDEN")


def test_only_admins_rename_delete_and_manage_members(
    client: FlaskClient, member: Tokens, grace: Tokens
) -> None:
    library = _create(client, member)["id"]
    assert _add(client, member, library, "grace@example.com").status_code == 201
    # Grace, a member, sees it but may not change it.
    assert client.get(f"{API}/{library}", headers=grace.headers).get_json()["data"]["role"] == (
        "member"
    )
    for response in (
        client.patch(f"{API}/{library}", json={"name": "Mine"}, headers=grace.headers),
        client.delete(f"{API}/{library}", headers=grace.headers),
        _add(client, grace, library, "member@example.com"),
        client.patch(
            f"{API}/{library}/members/{_user_id(client, member)}",
            json={"role": "member"},
            headers=grace.headers,
        ),
        client.delete(f"{API}/{library}/members/{_user_id(client, member)}", headers=grace.headers),
    ):
        assert_problem(response, 403, "E_FORBIDDEN")
    # The admin deletes it; it is gone for both.
    assert client.delete(f"{API}/{library}", headers=member.headers).status_code == 204
    for who in (member, grace):
        assert_problem(
            client.get(f"{API}/{library}", headers=who.headers), 404, "E_LIBRARY_NOT_FOUND"
        )


def test_members_are_added_by_address_listed_and_may_leave(
    client: FlaskClient, member: Tokens, grace: Tokens
) -> None:
    library = _create(client, member)["id"]
    added = _add(client, member, library, "Grace@Example.com")
    assert added.status_code == 201
    assert (added.get_json()["data"]["email"], added.get_json()["data"]["role"]) == (
        "grace@example.com",
        "member",
    )
    assert_problem(_add(client, member, library, "grace@example.com"), 409, "E_CONFLICT")
    # An address with no account: 404 (decision 0028 says why that may be told).
    assert_problem(_add(client, member, library, "nobody@example.com"), 404, "E_NOT_FOUND")
    listed = client.get(f"{API}/{library}/members", headers=grace.headers).get_json()["data"]
    assert [(m["email"], m["role"]) for m in listed] == [
        ("member@example.com", "admin"),
        ("grace@example.com", "member"),
    ]
    grace_id = _user_id(client, grace)
    assert (
        client.delete(f"{API}/{library}/members/{grace_id}", headers=grace.headers).status_code
        == 204
    )
    assert_problem(
        client.get(f"{API}/{library}", headers=grace.headers), 404, "E_LIBRARY_NOT_FOUND"
    )


def test_the_last_admin_can_be_neither_demoted_nor_removed(
    client: FlaskClient, member: Tokens, grace: Tokens
) -> None:
    library = _create(client, member)["id"]
    me = _user_id(client, member)
    demote = client.patch(
        f"{API}/{library}/members/{me}", json={"role": "member"}, headers=member.headers
    )
    assert_problem(demote, 403, "E_LAST_ADMIN_FORBIDDEN")
    leave = client.delete(f"{API}/{library}/members/{me}", headers=member.headers)
    assert_problem(leave, 403, "E_LAST_ADMIN_FORBIDDEN")
    # With a second admin, the first may step down.
    _add(client, member, library, "grace@example.com", role="admin")
    stepped = client.patch(
        f"{API}/{library}/members/{me}", json={"role": "member"}, headers=member.headers
    )
    assert stepped.status_code == 200
    assert stepped.get_json()["data"]["role"] == "member"


def test_an_outsider_gets_404_from_every_library_endpoint(
    client: FlaskClient, member: Tokens, outsider: Tokens
) -> None:
    library = _create(client, member)["id"]
    me = _user_id(client, member)
    for method, path, body in [
        ("GET", f"{API}/{library}", None),
        ("PATCH", f"{API}/{library}", {"name": "Mine now"}),
        ("DELETE", f"{API}/{library}", None),
        ("GET", f"{API}/{library}/members", None),
        ("POST", f"{API}/{library}/members", {"email": "mallory@example.com", "role": "admin"}),
        ("PATCH", f"{API}/{library}/members/{me}", {"role": "member"}),
        ("DELETE", f"{API}/{library}/members/{me}", None),
    ]:
        response = client.open(path, method=method, json=body, headers=outsider.headers)
        assert_problem(response, 404, "E_LIBRARY_NOT_FOUND")
        # The same answer as for a library that does not exist.
        missing = client.open(
            path.replace(library, str(uuid.uuid4())), method=method, json=body,
            headers=member.headers,
        )  # fmt: skip
        assert_problem(missing, 404, "E_LIBRARY_NOT_FOUND")
    names = [lib["name"] for lib in client.get(API, headers=outsider.headers).get_json()["data"]]
    assert names == ["My library"]  # only their own


def test_changes_are_audited(
    client: FlaskClient, member: Tokens, grace: Tokens, db_session: Session
) -> None:
    library = _create(client, member)["id"]
    client.patch(f"{API}/{library}", json={"name": "Renamed"}, headers=member.headers)
    _add(client, member, library, "grace@example.com")
    grace_id = _user_id(client, grace)
    client.patch(
        f"{API}/{library}/members/{grace_id}", json={"role": "admin"}, headers=member.headers
    )
    client.delete(f"{API}/{library}/members/{grace_id}", headers=member.headers)
    client.delete(f"{API}/{library}", headers=member.headers)
    actions = db_session.scalars(
        select(AuditLog.action).where(AuditLog.target_id == library).order_by(AuditLog.id)
    ).all()
    assert actions == [
        "library.create",
        "library.rename",
        "membership.add",
        "membership.update",
        "membership.remove",
        "library.delete",
    ]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database)
    client = app.test_client()
    tokens = {}
    for email in ("ada@example.com", "grace@example.com"):
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        body = client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        ).get_json()["data"]
        tokens[email] = {"Authorization": f"Bearer {body['access_token']}"}
    ada, grace = tokens["ada@example.com"], tokens["grace@example.com"]
    library = client.post(API, json={"name": "Shared"}, headers=ada).get_json()["data"]["id"]
    client.post(
        f"{API}/{library}/members",
        json={"email": "grace@example.com", "role": "admin"},
        headers=ada,
    )
    ids = {
        email: client.get("/api/v1/auth/me", headers=headers).get_json()["data"]["id"]
        for email, headers in tokens.items()
    }
    statuses: list[int] = []
    start = threading.Barrier(2)

    def demote(caller: dict[str, str], target: str) -> None:
        own = app.test_client()
        start.wait()
        response = own.patch(
            f"{API}/{library}/members/{target}", json={"role": "member"}, headers=caller
        )
        statuses.append(response.status_code)

    threads = [
        threading.Thread(target=demote, args=(ada, ids["grace@example.com"])),
        threading.Thread(target=demote, args=(grace, ids["ada@example.com"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 403]
    members = client.get(f"{API}/{library}/members", headers=ada).get_json()
    # Whoever is still an admin can list; one of the two is.
    roles = [m["role"] for m in (members.get("data") or [])]
    assert roles.count("admin") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "grace@example.com", "role": "owner"},
        {"email": "not-an-address", "role": "member"},
        {"email": "grace@example.com", "role": "member", "extra": 1},
    ],
)
def test_a_bad_member_body_is_400_naming_the_field(
    client: FlaskClient, member: Tokens, grace: Tokens, body: dict[str, Any]
) -> None:
    library = _create(client, member)["id"]
    added = client.post(f"{API}/{library}/members", json=body, headers=member.headers)
    problem = assert_problem(added, 400, "E_INVALID_REQUEST")
    assert {error["field"] for error in problem["errors"]} <= {"email", "role", "extra"}  # type: ignore[union-attr]
    changed = client.patch(
        f"{API}/{library}/members/{_user_id(client, member)}",
        json={"role": "owner"},
        headers=member.headers,
    )
    problem = assert_problem(changed, 400, "E_INVALID_REQUEST")
    assert [error["field"] for error in problem["errors"]] == ["role"]  # type: ignore[union-attr]
