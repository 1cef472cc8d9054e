"""The database layer: transactions, timeouts, fork safety, naming convention."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from nexus.infrastructure.database import (
    NAMING_CONVENTION,
    after_commit,
    get_database,
    get_session,
    transaction,
)


@pytest.fixture
def scratch_table(db_session: Session) -> str:
    # On the test's connection, outside the session's savepoints, so a
    # rollback inside the test cannot take the table with it.
    db_session.get_bind().execute(  # type: ignore[union-attr]
        text("CREATE TABLE scratch (id int PRIMARY KEY, note text NOT NULL)")
    )
    return "scratch"


def count(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM scratch")).scalar_one())


def test_transaction_commits_the_block(db_session: Session, scratch_table: str) -> None:
    with transaction(db_session):
        db_session.execute(text("INSERT INTO scratch VALUES (1, 'kept')"))
    assert count(db_session) == 1


def test_transaction_rolls_back_everything_on_error(
    db_session: Session, scratch_table: str
) -> None:
    def insert_then_fail() -> None:
        with transaction(db_session):
            db_session.execute(text("INSERT INTO scratch VALUES (1, 'lost')"))
            raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    assert count(db_session) == 0


def test_session_is_per_app_context_and_closed_at_teardown(app: Flask, db_session: Session) -> None:
    with app.app_context():
        first = get_session()
        assert get_session() is first
        first.execute(text("SELECT 1"))
    with app.app_context():
        assert get_session() is not first
    assert not first.in_transaction()  # closed: its connection went back


def test_savepoint_fixture_undoes_commits(db_session: Session) -> None:
    # If the previous test's rows had leaked, this table would already exist.
    db_session.execute(text("CREATE TABLE scratch (id int)"))


def test_statement_timeout_cancels_slow_queries(make_app: Callable[..., Flask]) -> None:
    app = make_app(db_statement_timeout_ms=200)
    with app.app_context():
        session = get_session()
        with pytest.raises(OperationalError, match="statement timeout"):
            session.execute(text("SELECT pg_sleep(5)"))


def test_unreachable_database_fails_within_connect_timeout(make_app: Callable[..., Flask]) -> None:
    app = make_app(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nexus")
    with app.app_context(), pytest.raises(OperationalError):
        get_session().execute(text("SELECT 1"))


def test_errors_never_carry_bound_parameters(db_session: Session, scratch_table: str) -> None:
    insert = text("INSERT INTO scratch VALUES (:id, :note)")
    db_session.execute(insert, {"id": 1, "note": "first"})
    with pytest.raises(Exception, match="hidden due to hide_parameters") as raised:
        db_session.execute(insert, {"id": 1, "note": "argon2id$secret-hash"})
    assert "secret-hash" not in str(raised.value)


def test_pool_is_dropped_in_forked_children(app: Flask) -> None:
    engine = get_database_engine(app)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert engine.pool.checkedin() == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write, str(engine.pool.checkedin()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0"
    assert engine.pool.checkedin() == 1  # the parent's connection is untouched
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


def get_database_engine(app: Flask):  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_database().engine


def test_constraint_names_follow_the_convention() -> None:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    table = Table(
        "widgets",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String),
        UniqueConstraint("name"),
    )
    names = {constraint.name for constraint in table.constraints}
    assert names == {"pk_widgets", "uq_widgets_name"}


def test_after_commit_runs_once_the_transaction_commits(
    db_session: Session, scratch_table: str
) -> None:
    ran: list[str] = []
    with transaction(db_session):
        db_session.execute(text("INSERT INTO scratch VALUES (1, 'kept')"))
        after_commit(db_session, lambda: ran.append("first"))
        after_commit(db_session, lambda: ran.append("second"))
        assert ran == []  # not before the commit
    assert ran == ["first", "second"]
    with transaction(db_session):
        db_session.execute(text("INSERT INTO scratch VALUES (2, 'kept')"))
    assert ran == ["first", "second"]  # each callback once


def _register_then_fail(session: Session, callback: Callable[[], object]) -> None:
    with transaction(session):
        after_commit(session, callback)
        raise RuntimeError("half-way")


def test_after_commit_is_dropped_when_the_transaction_rolls_back(
    db_session: Session, scratch_table: str
) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        _register_then_fail(db_session, lambda: ran.append("rolled back"))
    with transaction(db_session):
        db_session.execute(text("INSERT INTO scratch VALUES (1, 'kept')"))
    assert ran == []


def test_a_savepoint_rollback_keeps_what_came_before_it(
    db_session: Session, scratch_table: str
) -> None:
    # The pattern "try it in a savepoint, carry on if it conflicts" must not
    # lose the transaction's earlier effects (an enqueue, a cache eviction).
    ran: list[str] = []
    with transaction(db_session):
        db_session.execute(text("INSERT INTO scratch VALUES (1, 'first')"))
        after_commit(db_session, lambda: ran.append("before the savepoint"))
        try:
            with db_session.begin_nested():
                after_commit(db_session, lambda: ran.append("inside the savepoint"))
                db_session.execute(text("INSERT INTO scratch VALUES (1, 'duplicate')"))
        except IntegrityError:
            pass
        with db_session.begin_nested():
            after_commit(db_session, lambda: ran.append("in a released savepoint"))
    assert count(db_session) == 1
    # What the failed savepoint did is undone, its callback too; the rest runs.
    assert ran == ["before the savepoint", "in a released savepoint"]


def test_savepoints_on_a_real_connection_keep_earlier_callbacks(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    # The same, outside the tests' savepoint harness: real COMMIT and ROLLBACK.
    app = make_app(database_url=fresh_database)
    ran: list[str] = []
    with app.app_context(), get_database().sessionmaker() as session:
        with transaction(session):
            session.execute(text("CREATE TABLE scratch (id int PRIMARY KEY)"))
        with transaction(session):
            session.execute(text("INSERT INTO scratch VALUES (1)"))
            after_commit(session, lambda: ran.append("kept"))
            try:
                with session.begin_nested():
                    after_commit(session, lambda: ran.append("undone"))
                    session.execute(text("INSERT INTO scratch VALUES (1)"))
            except IntegrityError:
                pass
        assert ran == ["kept"]
        with pytest.raises(RuntimeError):
            _register_then_fail(session, lambda: ran.append("rolled back"))
        with transaction(session):
            session.execute(text("INSERT INTO scratch VALUES (2)"))
    assert ran == ["kept"]
