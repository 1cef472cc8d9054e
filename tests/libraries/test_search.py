"""Search through the API: ranked hits over what the viewer can read, with safe snippets."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from tests.accounts_fixtures import Tokens
from tests.api.test_errors import assert_problem
from tests.libraries.books import epub
from tests.libraries.helpers import API, library_of, pages, post_article, post_file, run_jobs
from tests.libraries.test_ingest import XSS, assert_inert


def search(client: FlaskClient, who: Tokens, query: str) -> list[dict[str, object]]:
    response = client.get(f"{API}/search?{query}", headers=who.headers)
    assert response.status_code == 200, response.get_json()
    hits: list[dict[str, object]] = response.get_json()["data"]
    return hits


def test_hits_are_ranked_with_marked_snippets_and_scoped_to_a_library(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis
) -> None:
    home = library_of(client, member)
    shelf = library_of(client, member, "Shelf")
    post_article(
        client, member, home, title="Gardens",
        text="Gardens need water.\n\nA garden of gardens: gardening gardens daily.",
    )  # fmt: skip
    post_article(client, member, shelf, title="Deserts", text="Deserts have little water.")
    run_jobs(app, redis)

    hits = search(client, member, "q=garden")
    assert [(hit["media"]["title"], hit["fragment_idx"]) for hit in hits] == [  # type: ignore[index]
        ("Gardens", 1),  # the fragment that says it most, first
        ("Gardens", 0),
    ]
    assert hits[1]["snippet"] == "<mark>Gardens</mark> need water"
    assert [hit["media"]["title"] for hit in search(client, member, "q=water")] == [  # type: ignore[index]
        "Gardens", "Deserts",
    ] or [hit["media"]["title"] for hit in search(client, member, "q=water")] == [  # type: ignore[index]
        "Deserts", "Gardens",
    ]  # fmt: skip
    in_shelf = search(client, member, f"q=water&library_id={shelf}")
    assert [hit["media"]["title"] for hit in in_shelf] == ["Deserts"]  # type: ignore[index]
    # Web-search syntax: a phrase, and a word left out.
    assert [h["fragment_idx"] for h in search(client, member, 'q="need water"')] == [0]
    assert [h["media"]["title"] for h in search(client, member, "q=water -garden")] == ["Deserts"]  # type: ignore[index]
    assert search(client, member, "q=the") == []  # only a stop word: nothing, not an error


def test_pages_of_hits_hold_each_hit_once(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis
) -> None:
    library = library_of(client, member)
    paragraphs = [f"Paragraph {n} mentions otters" + " otters" * (n % 4) for n in range(23)]
    post_article(client, member, library, title="Otters", text="\n\n".join(paragraphs))
    run_jobs(app, redis)
    seen: list[int] = []
    for page in pages(client, member, f"{API}/search?q=otters&limit=5"):
        seen += [hit["fragment_idx"] for hit in page]
        ranks = [hit["rank"] for hit in page]
        assert ranks == sorted(ranks, reverse=True)
    assert sorted(seen) == list(range(23))
    # A cursor is bound to its query.
    first = client.get(f"{API}/search?q=otters&limit=5", headers=member.headers).get_json()
    other = client.get(
        f"{API}/search?q=beavers&limit=5&cursor={first['meta']['next_cursor']}",
        headers=member.headers,
    )
    assert_problem(other, 400, "E_INVALID_REQUEST")


@pytest.mark.parametrize("payload", XSS)
def test_nothing_executable_reaches_a_snippet_or_a_fragment(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis, payload: str
) -> None:
    library = library_of(client, member)
    marker = "zebrafish"
    post_article(
        client,
        member,
        library,
        title="x",
        html=f"<p>{marker}</p>{payload}<p>{marker} {payload}</p>",
    )
    post_file(client, member, library, "x.html", f"<p>{marker}</p>{payload}".encode())
    book = epub([("c1", f"<html><body><p>{marker}</p>{payload}</body></html>")])
    post_file(client, member, library, "x.epub", book)
    post_file(client, member, library, "x.txt", f"{marker} {payload}".encode())
    post_file(client, member, library, "x.md", f"{marker}\n\n{payload}\n".encode())
    run_jobs(app, redis)
    hits = search(client, member, f"q={marker}")
    assert len({str(hit["media"]["id"]) for hit in hits}) == 5  # type: ignore[index]  # every upload
    for hit in hits:
        snippet = str(hit["snippet"])
        # Escaped text and <mark> only.
        assert "<" not in re.sub(r"</?mark>", "", snippet), snippet
    for media in {str(hit["media"]["id"]) for hit in hits}:  # type: ignore[index]
        for fragment in client.get(
            f"{API}/media/{media}/fragments", headers=member.headers
        ).get_json()["data"]:
            assert_inert(fragment["html_sanitized"])


def test_a_private_use_marker_in_an_article_cannot_forge_a_mark(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis
) -> None:
    post_article(
        client, member, library_of(client, member), title="x",
        text="\ue000 forged \ue001 1 < 2 & zebrafish",
    )  # fmt: skip
    run_jobs(app, redis)
    [hit] = search(client, member, "q=zebrafish")
    assert hit["snippet"] == "forged  1 &lt; 2 &amp; <mark>zebrafish</mark>"


def test_an_outsider_finds_nothing_and_a_bad_query_is_400(
    app: Flask, client: FlaskClient, member: Tokens, outsider: Tokens, redis: Redis
) -> None:
    post_article(client, member, library_of(client, member), title="x", text="confidential plans")
    run_jobs(app, redis)
    assert search(client, outsider, "q=confidential") == []
    assert search(client, member, "q=confidential")
    for query, field in [
        ("", "q"), ("q=", "q"), (f"q={'x' * 257}", "q"), ("q=a&library_id=nope", "library_id"),
        ("q=a%00b", "q"), ("q=a&limit=0", "limit"),
    ]:  # fmt: skip
        problem = assert_problem(
            client.get(f"{API}/search?{query}", headers=member.headers), 400, "E_INVALID_REQUEST"
        )
        assert field in {error["field"] for error in problem["errors"]}  # type: ignore[union-attr]
    # Punctuation and operators only: no hits, never an error.
    for odd in ["%26%7C%21", "%22", "-", "or", "%27%3A%2A"]:
        assert search(client, member, f"q={odd}") == []
