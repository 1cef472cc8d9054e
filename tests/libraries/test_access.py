"""Every libraries endpoint, walked as an outsider: 404 or nothing found, never 403 or data.

The routes come from the app's URL map, so an endpoint added later is
walked too, and one this test does not know how to call fails it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from tests.accounts_fixtures import Tokens
from tests.api.test_errors import assert_problem
from tests.libraries.helpers import API, library_of, post_article, run_jobs

# The body each endpoint is called with: a valid one, so only access decides.
BODIES: dict[str, Any] = {
    "libraries.rename_library": {"name": "Mine now"},
    "libraries.add_member": {"email": "mallory@example.com", "role": "admin"},
    "libraries.change_member_role": {"role": "member"},
    "libraries.upload_media": {"title": "Planted", "text": "planted words"},
}
# The caller's own scope: nothing of anyone else's can show.
OWN_SCOPE = {"libraries.list_libraries", "libraries.create_library", "libraries.search_fragments"}


def test_every_endpoint_as_an_outsider_is_404_or_finds_nothing(
    app: Flask, client: FlaskClient, member: Tokens, outsider: Tokens, redis: Redis
) -> None:
    library = library_of(client, member, "Private")
    posted = post_article(client, member, library, title="Secret", text="classified zeppelin")
    media_id = posted.get_json()["data"]["media"]["id"]
    run_jobs(app, redis)
    me = client.get(f"{API}/auth/me", headers=member.headers).get_json()["data"]["id"]
    ids = {"library_id": library, "media_id": media_id, "user_id": me}

    walked = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("libraries."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            walked.append(rule.endpoint)
            if rule.endpoint in OWN_SCOPE:
                continue
            path = rule.rule
            for name, value in ids.items():
                path = path.replace(f"<uuid:{name}>", value)
            assert "<" not in path, f"{rule.rule}: this test does not know that id"
            response = client.open(
                path, method=method, json=BODIES.get(rule.endpoint), headers=outsider.headers
            )
            code = "E_LIBRARY_NOT_FOUND" if "library_id" in rule.arguments else "E_MEDIA_NOT_FOUND"
            assert_problem(response, 404, code)

    assert set(walked) >= OWN_SCOPE | set(BODIES)  # the walk saw the routes it names
    # Their own lists and search hold nothing of the member's.
    listed = client.get(f"{API}/libraries", headers=outsider.headers).get_json()["data"]
    assert [lib["name"] for lib in listed] == ["My library"]
    for query in ("q=classified", "q=zeppelin", "q=secret"):
        found = client.get(f"{API}/search?{query}", headers=outsider.headers).get_json()
        assert found["data"] == []
    assert_problem(
        client.get(f"{API}/search?q=classified&library_id={library}", headers=outsider.headers),
        404,
        "E_LIBRARY_NOT_FOUND",
    )
    # And the member's media is as it was: nothing the outsider sent landed.
    read = client.get(f"{API}/media/{media_id}", headers=member.headers).get_json()["data"]
    assert read["title"] == "Secret"
    members = client.get(f"{API}/libraries/{library}/members", headers=member.headers).get_json()
    assert [m["email"] for m in members["data"]] == ["member@example.com"]
