"""Database: the SQLAlchemy engine, the session of each request or job, transactions.

Owns the one engine per process (psycopg 3, pre-ping, recycle, bounded pool,
connect and statement timeouts), its disposal in forked children, the
declarative ``Base`` with its constraint naming convention, ``get_session()``
(one session per app context, closed at teardown), ``transaction()``, the
only way code commits, and ``after_commit()`` for effects that must wait for
the commit. Imports no feature package.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from flask import Flask, current_app, g
from sqlalchemy import Connection, DateTime, Engine, MetaData, QueuePool, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker

from nexus.config import Settings
from nexus.infrastructure import metrics
from nexus.infrastructure.logging import get_logger

EXTENSION_KEY = "nexus.database"
_AFTER_COMMIT = "nexus.after_commit"
_LISTENING = "nexus.after_commit_listening"
log = get_logger(__name__)

# Stable, predictable constraint names, so migrations can drop and alter them
# by name on every PostgreSQL version (Alembic's recommended convention).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Nexus model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every timestamp is timestamptz: naive datetimes are a bug waiting for DST.
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


def create_db_engine(settings: Settings, *, application_name: str = "nexus") -> Engine:
    """The process's engine, configured so no caller waits on PostgreSQL for ever."""
    connect_args: dict[str, object] = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": application_name,
    }
    if settings.db_transaction_pooler:
        # Behind PgBouncer in transaction mode, each transaction may run on
        # another server connection: a statement psycopg prepared on one is
        # unknown on the next (PgBouncer before 1.21, or without
        # max_prepared_statements), and a startup option is refused or
        # dropped. So no prepared statements, and the timeout per transaction.
        connect_args["prepare_threshold"] = None
    else:
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    engine = create_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # Parameters may hold e-mail addresses and password hashes: keep them
        # out of exception messages, which end up in logs.
        hide_parameters=True,
        connect_args=connect_args,
    )
    if settings.db_transaction_pooler:
        _timeout_each_transaction(engine, settings.db_statement_timeout_ms)
    _dispose_in_forked_children(engine)
    _count_connections(engine)
    return engine


def _timeout_each_transaction(engine: Engine, timeout_ms: int) -> None:
    """``SET LOCAL statement_timeout`` as each transaction begins: it ends with it."""
    statement = f"SET LOCAL statement_timeout = {int(timeout_ms)}"

    @event.listens_for(engine, "begin")
    def _set_timeout(connection: Connection) -> None:
        connection.exec_driver_sql(statement)


def _count_connections(engine: Engine) -> None:
    """The pool's gauges: connections in use, its size, its overflow."""
    pool = engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else 0
    metrics.DB_POOL_SIZE.inc(size)

    def _overflow() -> None:
        if isinstance(pool, QueuePool):
            metrics.DB_POOL_OVERFLOW.set(max(0, pool.overflow()))

    @event.listens_for(engine, "checkout")
    def _checked_out(*_args: object) -> None:
        metrics.DB_POOL_CHECKED_OUT.inc()
        _overflow()

    @event.listens_for(engine, "checkin")
    def _checked_in(*_args: object) -> None:
        metrics.DB_POOL_CHECKED_OUT.dec()
        _overflow()


def _dispose_in_forked_children(engine: Engine) -> None:
    # A forked child (gunicorn worker, RQ work horse) must not reuse the
    # parent's sockets: two processes on one connection corrupt both. Dropping
    # the pool without closing leaves the parent's connections intact
    # (SQLAlchemy, "Using Connection Pools with Multiprocessing or os.fork()").
    ref = weakref.ref(engine)

    def _after_fork_in_child() -> None:
        child_engine = ref()
        if child_engine is not None:
            child_engine.dispose(close=False)

    os.register_at_fork(after_in_child=_after_fork_in_child)


class Database:
    """The engine and session factory of one app, kept in ``app.extensions``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Tests swap this factory for one bound to a rolled-back connection.
        self.sessionmaker: sessionmaker[Session] = sessionmaker(
            bind=engine, autoflush=False, expire_on_commit=False
        )

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self
        app.teardown_appcontext(_close_session)


def get_database() -> Database:
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database


def get_session() -> Session:
    """The session of the current request, job or command, opened on first use."""
    if "db_session" not in g:
        g.db_session = get_database().sessionmaker()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.close()
    except Exception as exc:
        # The connection died under us (PostgreSQL restarted, a proxy cut it):
        # the response is decided; raising here would replace it with the WSGI
        # server's own HTML 500. The pool drops the dead connection.
        log.warning("database.close_failed", error=f"{type(exc).__name__}: {exc}")


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the session's current transaction has committed.

    For effects outside PostgreSQL (a cache invalidation, an enqueue) that
    must not happen for a change that rolls back. Dropped when the
    transaction rolls back, or when the savepoint it was registered in does
    (``begin_nested()``): a savepoint rollback undoes only what was done
    inside it, and keeps the callbacks registered before it. A failing
    callback is logged, never raised: the commit already happened.
    """
    # The innermost transaction this callback belongs to. Begun here if need
    # be: a rollback of a transaction never begun would not be seen, and the
    # callback would wait for the next commit, of some other change.
    owner = session.get_nested_transaction() or session.get_transaction() or session.begin()
    pending: list[tuple[SessionTransaction, Callable[[], object]]] = session.info.setdefault(
        _AFTER_COMMIT, []
    )
    pending.append((owner, callback))
    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _run_after_commit)
        event.listen(session, "after_soft_rollback", _drop_after_commit)
        session.info[_LISTENING] = True


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy fires after_commit for the outermost commit only.
    for _owner, callback in session.info.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception:  # the data is committed; report, do not undo
            log.exception(
                "database.after_commit_failed", callback=getattr(callback, "__name__", "?")
            )


def _drop_after_commit(session: Session, previous: SessionTransaction) -> None:
    """A transaction or savepoint rolled back: drop the callbacks registered inside it."""
    if not previous.nested:
        session.info.pop(_AFTER_COMMIT, None)
        return
    pending = session.info.get(_AFTER_COMMIT, [])
    session.info[_AFTER_COMMIT] = [
        (owner, callback) for owner, callback in pending if not _within(owner, previous)
    ]


def _within(owner: SessionTransaction, savepoint: SessionTransaction) -> bool:
    current: SessionTransaction | None = owner
    while current is not None:
        if current is savepoint:
            return True
        current = current.parent
    return False


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit what the block did, or roll all of it back if it raised.

    Every mutation goes through this, so a half-done change never commits::

        with transaction(session):
            session.add(thing)
    """
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
