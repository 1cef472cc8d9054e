"""Authentication without Redis, without anything, and under a login flood."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from nexus.accounts.auth import password_hasher
from nexus.accounts.errors import AuthUnavailable
from nexus.accounts.models import User
from nexus.accounts.passwords import HashSlots
from nexus.config import Settings
from nexus_dev.local_services import RedisServer, free_port
from tests.accounts_fixtures import PASSWORD
from tests.api.test_errors import assert_problem
from tests.support import capture_logs, signal_tree


def _user(app: Flask) -> None:
    with app.app_context():
        session = app.extensions["nexus.database"].sessionmaker()
        session.add(User(email="solo@example.com", password_hash=password_hasher().hash(PASSWORD)))
        session.commit()
        session.close()


def test_authenticated_requests_work_without_redis_and_revocations_still_hold(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    _user(app)
    client = app.test_client()
    body = client.post(
        "/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD}
    ).get_json()["data"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    # The revocation was read from PostgreSQL: no cache could have told.
    assert_problem(client.get("/api/v1/auth/me", headers=headers), 401, "E_UNAUTHENTICATED")


def test_no_redis_and_no_postgres_is_503_auth_unavailable(
    make_app: Callable[..., Flask], fresh_database: str
) -> None:
    app = make_app(database_url=fresh_database)
    _user(app)
    token = (
        app.test_client()
        .post("/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD})
        .get_json()["data"]["access_token"]
    )
    dead = make_app(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    response = dead.test_client().get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 503, "E_AUTH_UNAVAILABLE")


HOLD_A_SLOT = """
import sys, time
from pathlib import Path
from nexus.accounts.passwords import HashSlots
with HashSlots(Path(sys.argv[1]), 1, 0).hold():
    print("holding", flush=True)
    time.sleep(60)
"""


def test_hash_slots_are_shared_by_every_process_and_freed_when_one_dies(
    make_app: Callable[..., Flask], fresh_database: str, tmp_path: Path
) -> None:
    """A gunicorn process hashing takes the host's slot from the others, and a
    process killed mid-hash gives it back (the kernel drops its flock)."""
    slots = tmp_path / "slots"
    # A database of its own: the refused login's audit row commits.
    app = make_app(
        database_url=fresh_database,
        max_concurrent_hashes=1,
        hash_wait_seconds=0,
        hash_slots_dir=slots,
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SLOT, str(slots)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        client = app.test_client()
        refused = client.post(
            "/api/v1/auth/login", json={"email": "x@example.com", "password": PASSWORD}
        )
        body = assert_problem(refused, 503, "E_AUTH_UNAVAILABLE")
        assert refused.headers["Retry-After"] == "2"
        assert "retry" in str(body["detail"])
    finally:
        holder.kill()
        holder.communicate()
    answered = client.post(
        "/api/v1/auth/login", json={"email": "x@example.com", "password": PASSWORD}
    )
    assert_problem(answered, 401, "E_UNAUTHENTICATED")


def test_a_login_refused_for_want_of_a_slot_costs_no_query(
    make_app: Callable[..., Flask], db_session: Session, tmp_path: Path
) -> None:
    """What keeps a login flood cheap: the refusal comes before the database."""
    app = make_app(max_concurrent_hashes=1, hash_wait_seconds=0, hash_slots_dir=tmp_path)
    with app.app_context():
        hasher = password_hasher()
        engine = app.extensions["nexus.database"].engine
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    release = threading.Event()
    holding = threading.Event()

    def hold_the_only_slot() -> None:
        with hasher.slot():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold_the_only_slot)
    thread.start()
    holding.wait(5)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for path in ("/api/v1/auth/login", "/api/v1/auth/register"):
            response = app.test_client().post(
                path, json={"email": "new-one@example.com", "password": PASSWORD}
            )
            assert_problem(response, 503, "E_AUTH_UNAVAILABLE")
    finally:
        event.remove(engine, "before_cursor_execute", count)
        release.set()
        thread.join()
    assert statements == []


def test_hash_slots_size_and_place(settings: Settings, tmp_path: Path) -> None:
    defaults = settings.model_copy(update={"hash_slots_dir": None, "max_concurrent_hashes": None})
    assert defaults.hash_slots == max(1, len(os.sched_getaffinity(0)) // 2)
    assert defaults.hash_slots_path.name == f"nexus-hash-slots-{os.getuid()}"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    # Anyone who could write there could hold every slot and refuse all sign-ins.
    with pytest.raises(RuntimeError, match="writable by it alone"):
        HashSlots(shared, 1, 0)


def test_unknown_users_are_verified_against_a_dummy_hash(make_app: Callable[..., Flask]) -> None:
    with make_app().app_context():
        hasher = password_hasher()
        assert hasher.verify(None, PASSWORD) is False
        real = hasher.hash(PASSWORD)
        assert hasher.verify(real, PASSWORD) is True
        assert hasher.verify(real, "something-else-entirely") is False
        assert hasher.verify("not-a-hash", PASSWORD) is False


def test_a_hung_redis_costs_one_short_timeout_not_every_request(
    make_app: Callable[..., Flask],
    fresh_database: str,
    own_redis: tuple[RedisServer, subprocess.Popen[bytes]],
) -> None:
    server, process = own_redis
    app = make_app(database_url=fresh_database, redis_url=server.url())
    _user(app)
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/login", json={"email": "solo@example.com", "password": PASSWORD}
    ).get_json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # cached now
    signal_tree(process, signal.SIGSTOP)
    try:
        with capture_logs() as logs:
            answers = [client.get("/api/v1/auth/me", headers=headers).status_code for _ in range(5)]
    finally:
        signal_tree(process, signal.SIGCONT)
    assert answers == [200] * 5
    # One attempt timed out; the next four went straight to PostgreSQL.
    assert [entry["event"] for entry in logs].count("auth.cache_unavailable") == 1


def test_a_forked_child_gets_slots_of_its_own(tmp_path: Path) -> None:
    """A child forked while its parent hashes neither inherits the parent's
    slot nor keeps it held after the parent lets go."""
    slots = HashSlots(tmp_path, 1, 0)
    with slots.hold():
        pid = os.fork()
        if pid == 0:  # the child: the parent holds the only slot
            code = 0
            try:
                with slots.hold():
                    code = 1  # it must not have got one
            except AuthUnavailable:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with slots.hold():  # the child's exit left nothing held
        pass


def test_a_hash_waits_for_a_slot_up_to_the_configured_time(tmp_path: Path) -> None:
    """NEXUS_HASH_WAIT_SECONDS: a slot freed within the wait is taken; none is a 503."""
    holder, waiter = HashSlots(tmp_path, 1, 0), HashSlots(tmp_path, 1, 0.3)
    release = threading.Event()
    held = threading.Event()

    def hold(seconds: float) -> None:
        with holder.hold():
            held.set()
            release.wait(seconds)

    thread = threading.Thread(target=hold, args=(0.05,))
    thread.start()
    held.wait(5)
    with waiter.hold():  # freed after 0.05 s, within the 0.3 s wait
        pass
    thread.join()

    held.clear()
    thread = threading.Thread(target=hold, args=(5,))
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(AuthUnavailable), waiter.hold():
            pass
    finally:
        release.set()
        thread.join()
