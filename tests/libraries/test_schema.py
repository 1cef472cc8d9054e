"""The libraries schema (migration 0006): its constraints refuse bad rows; users get a library.

Run on databases of their own, outside the savepoint fixture: each bad row
is refused by PostgreSQL itself, whatever code wrote it (nexus-pr01 §12.2).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg import errors
from sqlalchemy import text

from nexus import migrations
from nexus.infrastructure.database import get_session
from tests.accounts_fixtures import PASSWORD
from tests.migrations.test_migrations import libpq


@pytest.fixture
def db(fresh_database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(libpq(fresh_database), autocommit=True) as connection:
        yield connection


def _user(db: psycopg.Connection[tuple[object, ...]], email: str = "ada@example.com") -> uuid.UUID:
    row = db.execute(
        "INSERT INTO users (email, email_key, password_hash) VALUES (%s, %s, 'x') RETURNING id",
        (email, email),
    ).fetchone()
    assert row is not None
    user_id = row[0]
    assert isinstance(user_id, uuid.UUID)
    return user_id


def _library(
    db: psycopg.Connection[tuple[object, ...]], owner: uuid.UUID, *, default: bool = False
) -> uuid.UUID:
    row = db.execute(
        "INSERT INTO libraries (owner_user_id, name, is_default) VALUES (%s, 'Shelf', %s)"
        " RETURNING id",
        (owner, default),
    ).fetchone()
    assert row is not None
    library_id = row[0]
    assert isinstance(library_id, uuid.UUID)
    return library_id


def _media(db: psycopg.Connection[tuple[object, ...]], **columns: object) -> uuid.UUID:
    values = {"kind": "web_article", "title": "An article", **columns}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = db.execute(
        f"INSERT INTO media ({names}) VALUES ({marks}) RETURNING id",  # noqa: S608 - our names
        tuple(values.values()),
    ).fetchone()
    assert row is not None
    media_id = row[0]
    assert isinstance(media_id, uuid.UUID)
    return media_id


def test_a_second_default_library_for_one_user_is_refused(
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    ada = _user(db)
    _library(db, ada, default=True)
    _library(db, ada)  # any number of others
    with pytest.raises(errors.UniqueViolation, match="uix_libraries_one_default_per_user"):
        _library(db, ada, default=True)
    _library(db, _user(db, "grace@example.com"), default=True)  # one each


def test_a_duplicate_membership_and_a_bad_role_are_refused(
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    ada = _user(db)
    library = _library(db, ada)
    db.execute("INSERT INTO memberships VALUES (%s, %s, 'admin')", (library, ada))
    with pytest.raises(errors.UniqueViolation, match="pk_memberships"):
        db.execute("INSERT INTO memberships VALUES (%s, %s, 'member')", (library, ada))
    grace = _user(db, "grace@example.com")
    with pytest.raises(errors.CheckViolation, match="ck_memberships_role"):
        db.execute("INSERT INTO memberships VALUES (%s, %s, 'owner')", (library, grace))


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ({"kind": "podcast"}, "ck_media_kind"),
        ({"processing_status": "done"}, "ck_media_processing_status"),
    ],
)
def test_a_bad_kind_or_processing_status_is_refused(
    db: psycopg.Connection[tuple[object, ...]], columns: dict[str, str], constraint: str
) -> None:
    with pytest.raises(errors.CheckViolation, match=constraint):
        _media(db, **columns)


def test_every_kind_and_status_of_the_spec_is_accepted(
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    for kind in ("web_article", "epub", "pdf", "video", "podcast_episode"):
        _media(db, kind=kind)
    statuses = ("pending", "extracting", "ready_for_reading", "embedding", "ready", "failed")
    for status in statuses:
        _media(db, processing_status=status)
    row = db.execute("SELECT processing_status FROM media WHERE id = %s", (_media(db),)).fetchone()
    assert row == ("pending",)  # the default


@pytest.mark.parametrize(("length", "accepted"), [(0, False), (1, True), (100, True), (101, False)])
def test_a_library_name_is_1_to_100_characters(
    db: psycopg.Connection[tuple[object, ...]], length: int, accepted: bool
) -> None:
    ada = _user(db)
    insert = "INSERT INTO libraries (owner_user_id, name) VALUES (%s, %s)"
    if accepted:
        db.execute(insert, (ada, "é" * length))  # characters, not bytes
    else:
        with pytest.raises(errors.CheckViolation, match="ck_libraries_name_length"):
            db.execute(insert, (ada, "é" * length))


def test_fragments_are_unique_by_media_and_index_and_cascades_clean_up(
    db: psycopg.Connection[tuple[object, ...]],
) -> None:
    ada = _user(db)
    library = _library(db, ada)
    media = _media(db, created_by=ada)
    db.execute("INSERT INTO library_media VALUES (%s, %s)", (library, media))
    db.execute(
        "INSERT INTO fragments (media_id, idx, canonical_text, html_sanitized)"
        " VALUES (%s, 0, 'one', '<p>one</p>')",
        (media,),
    )
    with pytest.raises(errors.UniqueViolation, match="uq_fragments_media_id_idx"):
        db.execute(
            "INSERT INTO fragments (media_id, idx, canonical_text, html_sanitized)"
            " VALUES (%s, 0, 'again', '<p>again</p>')",
            (media,),
        )
    db.execute(
        "INSERT INTO media_originals (media_id, content_type, size, sha256, content)"
        " VALUES (%s, 'text/plain', 3, %s, 'one')",
        (media, "a" * 64),
    )
    with pytest.raises(errors.CheckViolation, match="ck_media_originals_sha256_length"):
        db.execute(
            "INSERT INTO media_originals (media_id, content_type, size, sha256, content)"
            " VALUES (%s, 'text/plain', 3, 'short', 'one')",
            (_media(db),),
        )

    db.execute("DELETE FROM media WHERE id = %s", (media,))
    for table in ("fragments", "library_media", "media_originals"):
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - ours
        assert row == (0,), table
    # A user's libraries and memberships go with the user; their media stay,
    # no longer attributed.
    kept = _media(db, created_by=ada)
    db.execute("INSERT INTO memberships VALUES (%s, %s, 'admin')", (library, ada))
    db.execute("DELETE FROM users WHERE id = %s", (ada,))
    assert db.execute("SELECT count(*) FROM libraries").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM memberships").fetchone() == (0,)
    assert db.execute("SELECT created_by FROM media WHERE id = %s", (kept,)).fetchone() == (None,)


def test_search_can_use_the_full_text_index(db: psycopg.Connection[tuple[object, ...]]) -> None:
    media = _media(db)
    db.execute(
        "INSERT INTO fragments (media_id, idx, canonical_text, html_sanitized)"
        " SELECT %s, n, 'filler text number ' || n, '' FROM generate_series(0, 499) AS n",
        (media,),
    )
    db.execute("UPDATE fragments SET canonical_text = 'the quick brown fox' WHERE idx = 250")
    db.execute("ANALYZE fragments")
    db.execute("SET enable_seqscan = off")
    plan = "\n".join(
        str(row[0])
        for row in db.execute(
            "EXPLAIN SELECT idx FROM fragments WHERE to_tsvector('english', canonical_text)"
            " @@ plainto_tsquery('english', 'foxes')"
        )
    )
    assert "ix_fragments_search" in plan
    found = db.execute(
        "SELECT idx FROM fragments WHERE to_tsvector('english', canonical_text)"
        " @@ plainto_tsquery('english', 'foxes')"
    ).fetchall()
    assert found == [(250,)]  # stemmed: "foxes" finds "fox"


def test_the_migration_gives_existing_users_their_default_library(empty_database: str) -> None:
    migrations.upgrade(empty_database, "0005")
    with psycopg.connect(libpq(empty_database), autocommit=True) as db:
        ada = _user(db)
    migrations.upgrade(empty_database, "0006")
    with psycopg.connect(libpq(empty_database), autocommit=True) as db:
        rows = db.execute(
            "SELECT l.name, l.is_default, m.role FROM libraries l"
            " JOIN memberships m ON m.library_id = l.id AND m.user_id = l.owner_user_id"
            " WHERE l.owner_user_id = %s",
            (ada,),
        ).fetchall()
    assert rows == [("My library", True, "admin")]
    migrations.downgrade(empty_database, "0005")
    migrations.upgrade(empty_database)


def test_registration_and_create_admin_each_make_a_default_library(
    client: FlaskClient, app: Flask
) -> None:
    registered = client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert registered.status_code == 201
    result = app.test_cli_runner().invoke(
        args=["create-admin", "root@example.com"], env={"NEXUS_ADMIN_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output

    with app.app_context():
        rows = (
            get_session()
            .execute(
                text(
                    "SELECT u.email, l.name, l.is_default, m.role FROM users u"
                    " JOIN libraries l ON l.owner_user_id = u.id"
                    " JOIN memberships m ON m.library_id = l.id AND m.user_id = u.id"
                    " ORDER BY u.email"
                )
            )
            .all()
        )
    assert [tuple(row) for row in rows] == [
        ("new@example.com", "My library", True, "admin"),
        ("root@example.com", "My library", True, "admin"),
    ]
