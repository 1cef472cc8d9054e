"""Migrations on an empty database: upgrade head → downgrade base → upgrade head.

Run apart from the savepoint fixture: they change the schema and commit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url

from nexus import migrations
from nexus.jobs.models import Job


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def has_function(url: str, name: str) -> bool:
    with psycopg.connect(libpq(url)) as connection:
        row = connection.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", (name,))
        return bool(row.fetchone()[0])  # type: ignore[index]


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    assert migrations.current(empty_database) is None
    migrations.upgrade(empty_database)
    assert migrations.current(empty_database) == migrations.head()
    assert has_function(empty_database, "nexus_set_updated_at")

    migrations.downgrade(empty_database, "base")
    assert migrations.current(empty_database) is None
    assert not has_function(empty_database, "nexus_set_updated_at")

    migrations.upgrade(empty_database)
    assert migrations.current(empty_database) == migrations.head()


def test_baseline_trigger_keeps_updated_at_current(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    with psycopg.connect(libpq(empty_database)) as connection:
        # gen_random_uuid() is built in (PostgreSQL 13+): no pgcrypto needed.
        connection.execute(
            "CREATE TABLE things (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " name text, updated_at timestamptz NOT NULL DEFAULT now() - interval '1 day')"
        )
        connection.execute(
            "CREATE TRIGGER things_set_updated_at BEFORE UPDATE ON things"
            " FOR EACH ROW EXECUTE FUNCTION nexus_set_updated_at()"
        )
        connection.execute("INSERT INTO things (name) VALUES ('a')")
        connection.execute("UPDATE things SET name = 'b'")
        age = connection.execute("SELECT now() - updated_at < interval '1 minute' FROM things")
        assert age.fetchone() == (True,)


def test_new_revisions_are_numbered_in_order(empty_database: str) -> None:
    migrations.upgrade(empty_database)
    head = migrations.head()
    expected = f"{int(head) + 1:04d}"
    assert migrations.next_revision_id() == expected
    path = Path(migrations.new_revision(empty_database, "add gadgets"))
    try:
        assert path.name == f"{expected}_add_gadgets.py"
        text = path.read_text()
        assert f'revision: str = "{expected}"' in text
        assert f'down_revision: str | None = "{head}"' in text
        assert migrations.next_revision_id() == f"{int(head) + 2:04d}"
        # Written as `make lint` wants it.
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--check", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        path.unlink()


def test_every_revision_file_is_numbered() -> None:
    names = sorted(p.name for p in (migrations.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert names
    assert all(name[:4].isdigit() and name[4] == "_" for name in names)


@pytest.mark.parametrize("revision", ["nope", "9999"])
def test_unknown_revision_is_refused(empty_database: str, revision: str) -> None:
    with pytest.raises(CommandError):
        migrations.upgrade(empty_database, revision)


def test_autogenerate_against_head_proposes_nothing(fresh_database: str) -> None:
    # What `flask --app nexus db revision --autogenerate` would write: the
    # models declare every table, constraint and index the migrations make.
    assert migrations.drift(fresh_database) == []


def test_the_drift_check_fails_when_a_model_loses_an_index(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = Job.__table__
    (index,) = [ix for ix in table.indexes if ix.name == "ix_jobs_started_heartbeat"]
    monkeypatch.setattr(table, "indexes", table.indexes - {index})
    proposed = migrations.drift(fresh_database)
    assert [(op[0], op[1].name) for op in proposed] == [
        ("remove_index", "ix_jobs_started_heartbeat")
    ]


def test_tables_outside_the_listed_domains_are_not_the_schemas_business(
    fresh_database: str,
) -> None:
    # tests/example_domain.py maps test_gadgets on the same Base; no domain
    # in nexus.domains declares it, so autogenerate does not propose it.
    from tests.example_domain import Gadget  # noqa: PLC0415 - imported for its mapping

    assert Gadget.__tablename__ not in migrations.managed_tables()
    assert migrations.drift(fresh_database) == []


def test_0005_stops_before_changing_anything_when_existing_accounts_clash(
    empty_database: str,
) -> None:
    migrations.upgrade(empty_database, "0004")
    with psycopg.connect(libpq(empty_database)) as connection:
        # Both fit under 0004's lower(email) index (the C locale folds only ASCII).
        for email in ("Émile@example.com", "émile@example.com", "ada@example.com"):
            connection.execute(
                "INSERT INTO users (email, password_hash) VALUES (%s, 'x')", (email,)
            )
    with pytest.raises(RuntimeError) as stopped:
        migrations.upgrade(empty_database)
    message = str(stopped.value)
    assert "émile@example.com: Émile@example.com (id " in message
    assert "ada@example.com" not in message
    assert "flask --app nexus db upgrade" in message
    assert migrations.current(empty_database) == "0004"  # nothing half-done

    with psycopg.connect(libpq(empty_database)) as connection:
        connection.execute("DELETE FROM users WHERE email = 'émile@example.com'")
    migrations.upgrade(empty_database)
    assert migrations.current(empty_database) == migrations.head()
    with psycopg.connect(libpq(empty_database)) as connection:
        keys = connection.execute("SELECT email_key FROM users ORDER BY email_key").fetchall()
    assert keys == [("ada@example.com",), ("émile@example.com",)]
    migrations.downgrade(empty_database, "0004")  # and back
