"""Media through the API: upload as JSON or a file, ingestion by the real job, reading, access."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nexus.audit.models import AuditLog
from nexus.libraries import media as media_services
from nexus.libraries.models import Fragment, Media
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.api.test_errors import assert_problem
from tests.libraries.books import chapter, epub, replace_entry, zip_bomb
from tests.libraries.helpers import API, library_of, post_article, post_file, run_jobs, texts

ARTICLE = (
    "<h1>On reading</h1><p>Read <em>slowly</em>.</p><script>alert(1)</script>"
    "<p onclick='x()'>Then read again.</p>"
)


def test_an_article_is_accepted_ingested_by_the_job_and_read_in_order(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis, db_session: Session
) -> None:
    library = library_of(client, member)
    response = post_article(
        client, member, library, title="  On   reading ", html=ARTICLE,
        canonical_source_url="https://example.org/on-reading",
    )  # fmt: skip
    assert response.status_code == 202, response.get_json()
    body = response.get_json()["data"]
    media = body["media"]
    assert (media["kind"], media["title"], media["processing_status"]) == (
        "web_article", "On reading", "pending",
    )  # fmt: skip
    assert media["canonical_source_url"] == "https://example.org/on-reading"
    assert media["original"]["content_type"] == "text/html"
    assert media["original"]["size"] == len(ARTICLE.encode())
    assert texts(client, member, media["id"]) == []  # nothing to read before the job

    run_jobs(app, redis)

    job = client.get(f"{API}/jobs/{body['job_id']}", headers=member.headers).get_json()["data"]
    assert job["status"] == "finished"
    assert job["result"] == {"status": "ready_for_reading", "fragments": 3}
    read = client.get(f"{API}/media/{media['id']}", headers=member.headers).get_json()["data"]
    assert (read["processing_status"], read["processing_error"]) == ("ready_for_reading", None)
    assert texts(client, member, media["id"]) == ["On reading", "Read slowly.", "Then read again."]
    fragments = client.get(
        f"{API}/media/{media['id']}/fragments", headers=member.headers
    ).get_json()["data"]
    assert [f["idx"] for f in fragments] == [0, 1, 2]
    assert fragments[2]["html_sanitized"] == "<p>Then read again.</p>"  # no onclick, no script


def test_the_same_content_again_is_the_same_media_with_no_job(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis
) -> None:
    library = library_of(client, member)
    first = post_article(client, member, library, title="A", html=ARTICLE)
    again = post_article(client, member, library, title="Another title", html=ARTICLE)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["data"]["job_id"] is None
    assert again.get_json()["data"]["media"]["id"] == first.get_json()["data"]["media"]["id"]
    # The same bytes as a file are the same content too.
    as_file = post_file(client, member, library, "a.html", ARTICLE.encode())
    assert as_file.status_code == 200
    # Another library is another media.
    other = post_article(
        client, member, library_of(client, member, "Other"), title="A", html=ARTICLE
    )
    assert other.status_code == 202
    assert other.get_json()["data"]["media"]["id"] != first.get_json()["data"]["media"]["id"]


@pytest.mark.parametrize(
    ("name", "content", "kind", "content_type", "expected"),
    [
        ("notes.txt", b"One\n\nTwo  words", "web_article", "text/plain", ["One", "Two words"]),
        ("README.md", b"# Head\n\n* a\n* b\n", "web_article", "text/markdown", ["Head", "a b"]),
        ("page.HTM", b"<p>x</p><p>y</p>", "web_article", "text/html", ["x", "y"]),
        (
            "book.epub",
            epub(
                [("c2", chapter("Two", "last")), ("c1", chapter("One", "first"))],
                spine=["c1", "c2"],
            ),
            "epub",
            "application/epub+zip",
            ["One", "first", "Two", "last"],
        ),
    ],
)
def test_each_accepted_file_type_is_ingested(
    app: Flask,
    client: FlaskClient,
    member: Tokens,
    redis: Redis,
    name: str,
    content: bytes,
    kind: str,
    content_type: str,
    expected: list[str],
) -> None:
    response = post_file(client, member, library_of(client, member), name, content)
    assert response.status_code == 202, response.get_json()
    media = response.get_json()["data"]["media"]
    assert (media["kind"], media["original"]["content_type"]) == (kind, content_type)
    assert media["title"] == name.rsplit(".", 1)[0]  # no title given: the file's name
    assert media["original"]["filename"] == name
    run_jobs(app, redis)
    assert texts(client, member, media["id"]) == expected


def test_a_title_field_names_a_file_and_a_path_is_only_its_name(
    client: FlaskClient, member: Tokens
) -> None:
    response = post_file(
        client, member, library_of(client, member), "../../home/ada/notes.txt", b"x",
        title="My notes",
    )  # fmt: skip
    media = response.get_json()["data"]["media"]
    assert (media["title"], media["original"]["filename"]) == ("My notes", "notes.txt")


@pytest.mark.parametrize("name", ["report.pdf", "archive.zip", "noextension", "evil.html.exe"])
def test_a_file_of_another_type_is_415_naming_the_accepted_ones(
    client: FlaskClient, member: Tokens, name: str
) -> None:
    response = post_file(client, member, library_of(client, member), name, b"%PDF-1.7")
    problem = assert_problem(response, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    assert ".epub" in str(problem["detail"])
    assert ".md" in str(problem["detail"])
    assert problem["errors"] == [
        {"field": "file", "message": "The accepted types are "
         ".epub, .htm, .html, .markdown, .md, .txt, .xhtml."}
    ]  # fmt: skip


def test_a_body_of_another_content_type_is_415(client: FlaskClient, member: Tokens) -> None:
    response = client.post(
        f"{API}/libraries/{library_of(client, member)}/media",
        data="title=x", headers={**member.headers, "Content-Type": "text/plain"},
    )  # fmt: skip
    problem = assert_problem(response, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    assert "application/json or multipart/form-data" in str(problem["detail"])


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"title": "x", "html": "<p>a</p>", "text": "a"}, "body", "E_INVALID_REQUEST"),
        ({"title": "x"}, "body", "E_INVALID_REQUEST"),
        ({"title": "   ", "text": "a"}, "title", "E_NAME_INVALID"),
        ({"title": "x" * 301, "text": "a"}, "title", "E_NAME_INVALID"),
        ({"title": "a\u0000b", "text": "a"}, "title", "E_NAME_INVALID"),
        ({"title": "x", "text": "a", "canonical_source_url": "javascript:alert(1)"},
         "canonical_source_url", "E_INVALID_REQUEST"),
        ({"title": "x", "text": "a", "kind": "epub"}, "kind", "E_INVALID_REQUEST"),
        ({"title": "x", "text": ""}, "text", "E_INVALID_REQUEST"),
    ],
)  # fmt: skip
def test_a_bad_article_is_400_naming_the_field(
    client: FlaskClient, member: Tokens, body: dict[str, Any], field: str, code: str
) -> None:
    problem = assert_problem(
        post_article(client, member, library_of(client, member), **body), 400, code
    )
    assert field in {error["field"] for error in problem["errors"]}  # type: ignore[union-attr]


def test_a_bad_file_upload_is_400_naming_the_field(client: FlaskClient, member: Tokens) -> None:
    library = library_of(client, member)
    empty = post_file(client, member, library, "empty.txt", b"")
    assert assert_problem(empty, 400, "E_INVALID_REQUEST")["errors"] == [
        {"field": "file", "message": "The file is empty."}
    ]
    no_file = client.post(
        f"{API}/libraries/{library}/media", data={"title": "x"}, headers=member.headers,
        content_type="multipart/form-data",
    )  # fmt: skip
    problem = assert_problem(no_file, 400, "E_INVALID_REQUEST")
    assert [error["field"] for error in problem["errors"]] == ["file"]  # type: ignore[union-attr]
    as_text = client.post(
        f"{API}/libraries/{library}/media", data={"file": "not a file part"},
        headers=member.headers, content_type="multipart/form-data",
    )  # fmt: skip
    assert_problem(as_text, 400, "E_INVALID_REQUEST")


def test_the_upload_route_takes_up_to_its_own_limit_and_no_other_route_does(
    client: FlaskClient, member: Tokens
) -> None:
    library = library_of(client, member)
    two_mib = "word " * (2 * 1024 * 1024 // 5)
    assert post_article(client, member, library, title="Big", text=two_mib).status_code == 202
    # The app-wide 1 MiB limit still holds everywhere else.
    other = client.post(f"{API}/libraries", json={"name": two_mib}, headers=member.headers)
    assert_problem(other, 413, "E_PAYLOAD_TOO_LARGE")
    over = b"x" * (10 * 1024 * 1024 + 1)
    refused = post_file(client, member, library, "huge.txt", over)
    problem = assert_problem(refused, 413, "E_PAYLOAD_TOO_LARGE")
    assert "10485760 bytes" in str(problem["detail"])
    assert_problem(
        post_article(client, member, library, title="Huge", text=over.decode()), 413,
        "E_PAYLOAD_TOO_LARGE",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("latin1.txt", "café".encode("latin-1"), "not valid UTF-8 (byte 3)"),
        ("cut.epub", epub([("c1", chapter("One", "x"))])[:-150], "not a readable EPUB"),
        ("bomb.epub", zip_bomb(), "unpacks to more than 200 MiB"),
        ("deep.html", ("<div>" * 50_000 + "x").encode(), "more than 1000 deep"),
        ("nothing.html", b"<script>alert(1)</script>", "no readable text"),
    ],
    ids=["invalid-utf8", "truncated-epub", "zip-bomb", "deep-nesting", "no-text"],
)
def test_a_malformed_file_ends_failed_with_its_reason_and_the_worker_lives_on(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis,
    name: str, content: bytes, reason: str,
) -> None:  # fmt: skip
    library = library_of(client, member)
    bad = post_file(client, member, library, name, content).get_json()["data"]
    good = post_article(client, member, library, title="Fine", text="Fine.").get_json()["data"]
    run_jobs(app, redis)
    read = client.get(f"{API}/media/{bad['media']['id']}", headers=member.headers).get_json()
    assert read["data"]["processing_status"] == "failed"
    assert reason in read["data"]["processing_error"]
    job = client.get(f"{API}/jobs/{bad['job_id']}", headers=member.headers).get_json()["data"]
    assert (job["status"], job["attempts"]) == ("finished", 1)  # not retried: it would fail again
    # The job after it ran: the worker survived.
    fine = client.get(f"{API}/media/{good['media']['id']}", headers=member.headers).get_json()
    assert fine["data"]["processing_status"] == "ready_for_reading"


def test_a_book_that_breaks_after_its_first_chapter_leaves_no_fragment_behind(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis, db_session: Session
) -> None:
    # Chapter one is written (streamed) before chapter two fails to decode.
    book = replace_entry(
        epub([("c1", chapter("One", *["fine"] * 50)), ("c2", chapter("Two", "x"))]),
        "c2.xhtml",
        b"<p>caf\xe9</p>",
    )
    posted = post_file(client, member, library_of(client, member), "b.epub", book)
    media_id = posted.get_json()["data"]["media"]["id"]
    run_jobs(app, redis)
    read = client.get(f"{API}/media/{media_id}", headers=member.headers).get_json()["data"]
    assert read["processing_status"] == "failed"
    assert "OEBPS/text/c2.xhtml is not valid UTF-8" in read["processing_error"]
    assert texts(client, member, media_id) == []
    count = db_session.scalar(
        select(func.count()).select_from(Fragment).where(Fragment.media_id == uuid.UUID(media_id))
    )
    assert count == 0


def test_ingesting_twice_or_after_a_crash_writes_each_fragment_once(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis, db_session: Session
) -> None:
    posted = post_article(client, member, library_of(client, member), title="A", html=ARTICLE)
    media_id = uuid.UUID(posted.get_json()["data"]["media"]["id"])
    run_jobs(app, redis)

    def fragments() -> list[tuple[int, str]]:
        db_session.expire_all()
        rows = db_session.execute(
            select(Fragment.idx, Fragment.canonical_text)
            .where(Fragment.media_id == media_id)
            .order_by(Fragment.idx)
        ).all()
        return [(idx, text) for idx, text in rows]

    done = fragments()
    assert len(done) == 3
    with app.app_context():
        # Run again once it is done: nothing to do.
        again = media_services.ingest(db_session, media_id, timed_out=TimeoutError)
        assert again.skipped
        # A run that died after claiming left it `extracting`: the next run finishes it.
        db_session.execute(
            update(Media).where(Media.id == media_id).values(processing_status="extracting")
        )
        db_session.commit()
        redone = media_services.ingest(db_session, media_id, timed_out=TimeoutError)
    assert (redone.status, redone.fragments) == ("ready_for_reading", 3)
    assert fragments() == done


def test_reprocess_is_for_library_admins_and_replaces_the_fragments(
    app: Flask, client: FlaskClient, member: Tokens, grace: Tokens, redis: Redis,
    db_session: Session,
) -> None:  # fmt: skip
    library = library_of(client, member, "Shared")
    client.post(
        f"{API}/libraries/{library}/members", json={"email": "grace@example.com"},
        headers=member.headers,
    )  # fmt: skip
    posted = post_article(client, grace, library, title="A", html=ARTICLE).get_json()["data"]
    run_jobs(app, redis)
    media_id = posted["media"]["id"]
    as_member = client.post(f"{API}/media/{media_id}/reprocess", headers=grace.headers)
    assert_problem(as_member, 403, "E_FORBIDDEN")
    response = client.post(f"{API}/media/{media_id}/reprocess", headers=member.headers)
    assert response.status_code == 202
    body = response.get_json()["data"]
    assert body["media"]["processing_status"] == "pending"
    assert body["job_id"] != posted["job_id"]
    # Asked twice before it runs: the same job.
    twice = client.post(f"{API}/media/{media_id}/reprocess", headers=member.headers)
    assert twice.get_json()["data"]["job_id"] == body["job_id"]
    run_jobs(app, redis)
    assert texts(client, member, media_id) == ["On reading", "Read slowly.", "Then read again."]
    count = db_session.scalar(
        select(func.count()).select_from(Fragment).where(Fragment.media_id == uuid.UUID(media_id))
    )
    assert count == 3


def test_media_is_added_to_and_removed_from_libraries(
    app: Flask, client: FlaskClient, member: Tokens, grace: Tokens, db_session: Session
) -> None:
    home = library_of(client, member)
    shelf = library_of(client, member, "Shelf")
    media_id = post_article(client, member, home, title="A", text="a").get_json()["data"]["media"][
        "id"
    ]
    added = client.post(f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers)
    assert (added.status_code, added.get_json()["data"]["id"]) == (201, media_id)
    again = client.post(f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers)
    assert again.status_code == 200
    # A member who is not an admin may add, not remove.
    client.post(
        f"{API}/libraries/{shelf}/members", json={"email": "grace@example.com"},
        headers=member.headers,
    )  # fmt: skip
    assert_problem(
        client.delete(f"{API}/libraries/{shelf}/media/{media_id}", headers=grace.headers),
        403, "E_FORBIDDEN",
    )  # fmt: skip
    assert (
        client.delete(
            f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers
        ).status_code
        == 204
    )
    assert_problem(
        client.delete(f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers),
        404, "E_MEDIA_NOT_FOUND",
    )  # fmt: skip
    # Grace could read it through the shelf; not any more.
    assert_problem(
        client.get(f"{API}/media/{media_id}", headers=grace.headers), 404, "E_MEDIA_NOT_FOUND"
    )
    # Out of its last library, nobody can read it: it is deleted with its file.
    assert (
        client.delete(
            f"{API}/libraries/{home}/media/{media_id}", headers=member.headers
        ).status_code
        == 204
    )
    assert db_session.get(Media, uuid.UUID(media_id)) is None


def test_media_actions_are_audited(
    app: Flask, client: FlaskClient, member: Tokens, db_session: Session
) -> None:
    home = library_of(client, member)
    shelf = library_of(client, member, "Shelf")
    media_id = post_article(client, member, home, title="A", text="a").get_json()["data"]["media"][
        "id"
    ]
    client.post(f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers)
    client.post(f"{API}/media/{media_id}/reprocess", headers=member.headers)
    client.delete(f"{API}/libraries/{shelf}/media/{media_id}", headers=member.headers)
    rows = db_session.execute(
        select(AuditLog.action, AuditLog.meta)
        .where(AuditLog.target_id == media_id)
        .order_by(AuditLog.id)
    ).all()
    assert [action for action, _ in rows] == [
        "media.upload",
        "media.add",
        "media.reprocess",
        "media.remove",
    ]
    assert rows[0][1]["library_id"] == home
    assert rows[3][1] == {"library_id": shelf, "deleted": False}


def test_an_outsider_gets_404_from_every_media_endpoint(
    app: Flask, client: FlaskClient, member: Tokens, outsider: Tokens, redis: Redis
) -> None:
    library = library_of(client, member)
    own = library_of(client, outsider)
    media_id = post_article(
        client, member, library, title="Secret", text="classified words"
    ).get_json()["data"]["media"]["id"]
    run_jobs(app, redis)
    cases = [
        ("GET", f"{API}/media/{media_id}", None, "E_MEDIA_NOT_FOUND"),
        ("GET", f"{API}/media/{media_id}/fragments", None, "E_MEDIA_NOT_FOUND"),
        ("POST", f"{API}/media/{media_id}/reprocess", None, "E_MEDIA_NOT_FOUND"),
        ("POST", f"{API}/libraries/{own}/media/{media_id}", None, "E_MEDIA_NOT_FOUND"),
        ("POST", f"{API}/libraries/{library}/media/{media_id}", None, "E_LIBRARY_NOT_FOUND"),
        ("DELETE", f"{API}/libraries/{library}/media/{media_id}", None, "E_LIBRARY_NOT_FOUND"),
        (
            "POST",
            f"{API}/libraries/{library}/media",
            {"title": "x", "text": "y"},
            "E_LIBRARY_NOT_FOUND",
        ),
        ("GET", f"{API}/search?q=classified&library_id={library}", None, "E_LIBRARY_NOT_FOUND"),
    ]
    for method, path, body, code in cases:
        response = client.open(path, method=method, json=body, headers=outsider.headers)
        assert_problem(response, 404, code)
        # The same answer as for ids that do not exist.
        missing = path.replace(media_id, str(uuid.uuid4())).replace(library, str(uuid.uuid4()))
        again = client.open(missing, method=method, json=body, headers=outsider.headers)
        assert_problem(again, 404, code)
    found = client.get(f"{API}/search?q=classified", headers=outsider.headers).get_json()
    assert found["data"] == []
    assert client.get(f"{API}/search?q=classified", headers=member.headers).get_json()["data"]


def test_two_uploads_of_the_same_content_at_once_make_one_media(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database)
    client = app.test_client()
    client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    token = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).get_json()["data"]["access_token"]
    ada = Tokens(token, "")
    library = library_of(client, ada)
    answers: list[tuple[int, str, str | None]] = []
    start = threading.Barrier(4)

    def upload() -> None:
        own = app.test_client()
        start.wait()
        response = post_article(own, ada, library, title="Same", html=ARTICLE)
        body = response.get_json()["data"]
        answers.append((response.status_code, body["media"]["id"], body["job_id"]))

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _, _ in answers) == [200, 200, 200, 202]
    assert len({media_id for _, media_id, _ in answers}) == 1
    assert [job for _, _, job in answers if job is not None] != []
    with app.app_context():
        database = app.extensions["nexus.database"]
        with database.sessionmaker() as session:
            assert session.scalar(select(func.count()).select_from(Media)) == 1


@pytest.mark.parametrize("kilobytes", [5, 500, 5_000])
def test_articles_from_kilobytes_to_5_mb_are_read_whole_and_in_order(
    app: Flask, client: FlaskClient, member: Tokens, redis: Redis, db_session: Session,
    kilobytes: int,
) -> None:  # fmt: skip
    paragraphs: list[str] = []
    while sum(len(p) + 9 for p in paragraphs) < kilobytes * 1024:
        n = len(paragraphs)
        paragraphs.append(f"Paragraph {n} of the article: " + "lorem ipsum dolor " * 20)
    html = "".join(f"<p>{p}</p>" for p in paragraphs).encode()
    posted = post_file(client, member, library_of(client, member), "long.html", html)
    assert posted.status_code == 202
    media_id = uuid.UUID(posted.get_json()["data"]["media"]["id"])
    run_jobs(app, redis)
    db_session.expire_all()
    media = db_session.get(Media, media_id)
    assert media is not None
    assert media.processing_status == "ready_for_reading"
    stored = db_session.scalars(
        select(Fragment.canonical_text).where(Fragment.media_id == media_id).order_by(Fragment.idx)
    ).all()
    assert stored == [" ".join(p.split()) for p in paragraphs]
