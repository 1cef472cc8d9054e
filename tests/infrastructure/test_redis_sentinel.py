"""Redis through Sentinel: a real master, replica and sentinel, started here on loopback.

With ``NEXUS_REDIS_SENTINELS`` set, the app, the rate limiter and RQ find
the master through the sentinels and follow it across a failover; a worker
warns when its Redis may evict keys (RQ's jobs would be lost).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from redis import Redis

from nexus.infrastructure.queue import get_queues
from nexus.infrastructure.redis import get_redis
from nexus_dev.local_services import RedisServer, find_redis, free_port, stop_process
from tests.support import FLASK, run, start_worker, stop_workers, wait_for

MASTER = "nexus-test"
DB = 3


@dataclass
class Cluster:
    master: Redis
    replica: Redis
    sentinel: Redis
    sentinel_port: int

    def current(self) -> Redis:
        """The server the sentinel names as master now."""
        _host, port = self.sentinel.sentinel_get_master_addr_by_name(MASTER)  # type: ignore[no-untyped-call]
        return (
            self.master
            if int(port) == self.master.connection_pool.connection_kwargs["port"]
            else self.replica
        )

    def other(self) -> Redis:
        return self.replica if self.current() is self.master else self.master


def _start(server: RedisServer, *extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [*server.command(), *extra], stdout=subprocess.DEVNULL, start_new_session=True
    )
    server.wait_ready(process=process)
    return process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One set for the module (a sentinel takes seconds to learn its replica)."""
    tmp_path = tmp_path_factory.mktemp("sentinel")
    install = find_redis()
    processes: list[subprocess.Popen[bytes]] = []
    # Evicting keys, on both (either may be the master): what a worker must warn about.
    evicting = ("--maxmemory-policy", "allkeys-lru")
    try:
        master = RedisServer(install, tmp_path / "master", free_port(), durable=False)
        processes.append(_start(master, *evicting))
        replica = RedisServer(install, tmp_path / "replica", free_port(), durable=False)
        processes.append(_start(replica, *evicting, "--replicaof", "127.0.0.1", str(master.port)))
        sentinel_port = free_port()
        config = tmp_path / "sentinel.conf"  # the sentinel rewrites it: its own file
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
        )
        processes.append(
            subprocess.Popen(
                [str(install.server), str(config), "--sentinel"],
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        clients = Cluster(
            Redis(port=master.port, db=DB),
            Redis(port=replica.port, db=DB),
            Redis(port=sentinel_port),
            sentinel_port,
        )
        # Ready when the sentinel knows the master and its replica.
        wait_for(
            lambda: clients.sentinel.execute_command("SENTINEL", "REPLICAS", MASTER),
            timeout=30,
        )
        wait_for(
            lambda: clients.replica.info("replication")["master_link_status"] == "up", timeout=30
        )
        yield clients
    finally:
        for process in reversed(processes):
            stop_process(process, grace=2)


def _settings(cluster: Cluster) -> dict[str, str]:
    # REDIS_URL's host is nobody's: only the sentinels say where the master is.
    return {
        "redis_url": f"redis://127.0.0.1:1/{DB}",
        "redis_sentinels": f"127.0.0.1:{cluster.sentinel_port}",
        "redis_sentinel_master": MASTER,
    }


def test_the_app_finds_the_master_and_follows_a_failover(
    make_app: Callable[..., Flask], cluster: Cluster
) -> None:
    app = make_app(**_settings(cluster))
    with app.app_context():
        redis = get_redis()
        redis.set("nexus:sentinel-test", "before")
        assert cluster.current().get("nexus:sentinel-test") == b"before"
        assert app.test_client().get("/healthz").json == {
            "status": "ok", "db": "ok", "redis": "ok",
        }  # fmt: skip
        job = get_queues().default.enqueue("nexus.jobs.ping.ping")
        assert job.id.encode() in cluster.current().lrange("rq:queue:default", 0, -1)

        old, new = cluster.current(), cluster.other()
        cluster.sentinel.execute_command("SENTINEL", "FAILOVER", MASTER)
        wait_for(lambda: cluster.current() is new, timeout=30)
        wait_for(lambda: new.info("replication")["role"] == "master", timeout=30)
        # The old master demoted: a write there now fails with READONLY.
        wait_for(lambda: old.info("replication")["role"] == "slave", timeout=30)

        # The same client, the same pool (its idle connection still to the old
        # master): READONLY makes it ask the sentinel again, and the write lands.
        redis.set("nexus:sentinel-test", "after")
        assert new.get("nexus:sentinel-test") == b"after"
        assert app.test_client().get("/healthz").status_code == 200


def test_a_worker_runs_jobs_through_the_sentinel_and_warns_of_eviction(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str, cluster: Cluster
) -> None:
    settings = _settings(cluster)
    env = subprocess_env(
        fresh_database,
        REDIS_URL=settings["redis_url"],
        NEXUS_REDIS_SENTINELS=settings["redis_sentinels"],
        NEXUS_REDIS_SENTINEL_MASTER=MASTER,
        NEXUS_LOG_FORMAT="json",
    )
    workers = [start_worker(env)]
    try:
        # `jobs ping` enqueues through the sentinel and waits for a worker's answer.
        result = run([*FLASK, "jobs", "ping", "--timeout", "30"], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("pong from worker")
    finally:
        stop_workers(workers)
    # At start, a worker says when its Redis may evict keys.
    warned = run([*FLASK, "worker", "--burst", "--queue", "low"], env)
    assert warned.returncode == 0, warned.stderr
    assert '"event":"redis.evicting"' in warned.stderr
    assert '"maxmemory_policy":"allkeys-lru"' in warned.stderr


def test_a_worker_on_a_redis_that_keeps_its_keys_says_nothing(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    env = subprocess_env(fresh_database, NEXUS_LOG_FORMAT="json")
    result = run([*FLASK, "worker", "--burst", "--queue", "low"], env)
    assert result.returncode == 0, result.stderr
    assert "redis.evicting" not in result.stderr
    assert "redis.eviction_policy_unknown" not in result.stderr


@pytest.mark.parametrize(
    ("sentinels", "message"),
    [
        ("127.0.0.1", "each sentinel is host:port, not '127.0.0.1'"),
        ("127.0.0.1:0", "each sentinel is host:port, not '127.0.0.1:0'"),
        ("sentinel-a:26379,:26379", "each sentinel is host:port, not ':26379'"),
    ],
)
def test_bad_sentinel_settings_are_refused_at_start(
    subprocess_env: Callable[..., dict[str, str]], fresh_database: str, sentinels: str, message: str
) -> None:
    env = subprocess_env(fresh_database, NEXUS_REDIS_SENTINELS=sentinels)
    result = run([*FLASK, "db", "current"], env)
    assert result.returncode == 2
    assert "NEXUS_REDIS_SENTINELS" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
