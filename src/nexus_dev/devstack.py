"""``make dev``: PostgreSQL, Redis, the web app and a worker under one supervisor.

Starts whatever ``DATABASE_URL`` / ``REDIS_URL`` do not already point at
(real servers on loopback, data under ``data/dev/``, one directory per server
and version: ``postgres-15``, ``redis-7.0``, ``valkey-8.1``; newer servers write
files older ones cannot read), migrates, writes ``data/dev/services.env`` so any other
terminal's ``flask --app nexus ...`` finds the servers, then runs the web app
(``flask run`` with the reloader) and a worker. A process that dies is
restarted with backoff — the web keeps answering ``/healthz`` (503) while a
database is down. Ctrl-C (or SIGTERM) stops everything, apps first, and
removes ``services.env``; nothing is left running or listening.

Also ``python -m nexus_dev.devstack psql`` / ``redis-cli``: shells on the
servers.
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

from dotenv import dotenv_values

from nexus.config import SERVICES_ENV, dev_services_env, local_value
from nexus_dev import local_services
from nexus_dev.local_services import (
    PostgresServer,
    RedisServer,
    ServiceError,
    port_in_use,
    stop_process,
)

DEV_DATABASE = "nexus"
RESTART_BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # seconds up before a restart counts as recovered


@dataclass
class Program:
    """One supervised process: how to start it and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    user: pwd.struct_passwd | None = None
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts programs, prefixes their output, restarts the ones that die."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.programs: list[Program] = []
        self.out = out
        self._out_lock = threading.Lock()
        self.stopping = threading.Event()

    def say(self, name: str, line: str) -> None:
        with self._out_lock:
            self.out.write(f"{name:>8} | {line.rstrip()}\n")
            self.out.flush()

    def start(self, program: Program) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            program.argv,
            env=program.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group, so a stop reaches the reloader's child
            # and the work horse too, and Ctrl-C reaches only us.
            start_new_session=True,
            **local_services.identity(program.user),
        )
        program.process = process
        program.started_at = time.monotonic()
        program.restart_at = None
        if program not in self.programs:
            self.programs.append(program)
        threading.Thread(target=self._pump, args=(program.name, process), daemon=True).start()
        self.say("dev", f"started {program.name} (pid {process.pid})")
        return process

    def _pump(self, name: str, process: subprocess.Popen[bytes]) -> None:
        for raw in process.stdout or ():
            self.say(name, raw.decode(errors="replace"))

    def check(self) -> None:
        """Schedule a restart for each program that exited; start those that are due."""
        now = time.monotonic()
        for program in self.programs:
            process = program.process
            if process is None or self.stopping.is_set():
                continue
            if process.poll() is not None and program.restart_at is None:
                if now - program.started_at > STABLE_AFTER:
                    program.backoff = 1.0
                program.restart_at = now + program.backoff
                self.say(
                    "dev",
                    f"{program.name} exited with code {process.returncode}; "
                    f"restarting in {program.backoff:g} s",
                )
                program.backoff = min(program.backoff * 2, RESTART_BACKOFF_MAX)
            elif program.restart_at is not None and now >= program.restart_at:
                program.restarts += 1
                self.start(program)

    def stop_all(self) -> None:
        """Stop in reverse start order: apps before the databases they use."""
        self.stopping.set()
        for program in reversed(self.programs):
            if program.process is not None and program.process.poll() is None:
                self.say("dev", f"stopping {program.name}")
                stop_process(program.process, sig=program.stop_signal, grace=15.0)


@dataclass(frozen=True)
class DevConfig:
    data_dir: Path
    web_port: int
    pg_port: int
    redis_port: int
    mail_port: int = 51025


def _start_postgres(supervisor: Supervisor, config: DevConfig) -> str:
    install = local_services.find_postgres()
    server = PostgresServer(
        install, config.data_dir / f"postgres-{install.major}", config.pg_port, durable=True
    )
    if port_in_use(server.port):
        raise ServiceError(
            f"port {server.port} is taken; set NEXUS_DEV_PG_PORT or stop what listens there"
        )
    if server.initialise():
        supervisor.say("dev", f"created a PostgreSQL {install.major} cluster in {server.datadir}")
    process = supervisor.start(
        Program(
            "postgres",
            server.command(),
            user=server.user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back, checkpoint, exit
        )
    )
    server.wait_ready(process=process)
    server.create_database(DEV_DATABASE)
    return server.url(DEV_DATABASE)


def _start_redis(supervisor: Supervisor, config: DevConfig) -> str:
    install = local_services.find_redis()
    server = RedisServer(install, config.data_dir / install.label, config.redis_port)
    if port_in_use(server.port):
        raise ServiceError(
            f"port {server.port} is taken; set NEXUS_DEV_REDIS_PORT or stop what listens there"
        )
    process = supervisor.start(Program("redis", server.command()))
    server.wait_ready(process=process)
    return server.url()


def _start_mail(supervisor: Supervisor, config: DevConfig) -> dict[str, str]:
    """A catch-all SMTP server on loopback; what it catches is in data/dev/mail (`make mail`)."""
    if port_in_use(config.mail_port):
        raise ServiceError(
            f"port {config.mail_port} is taken; set NEXUS_DEV_MAIL_PORT or stop what listens there"
        )
    supervisor.start(
        Program(
            "mail",
            [sys.executable, "-m", "nexus_dev.mailcatcher", "serve",
             "--port", str(config.mail_port), "--dir", str(config.data_dir / "mail")],
        )
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not port_in_use(config.mail_port):
        if time.monotonic() > deadline:
            raise ServiceError(f"the mail catcher did not listen on {config.mail_port}")
        time.sleep(0.1)
    return {
        "NEXUS_SMTP_HOST": "127.0.0.1",
        "NEXUS_SMTP_PORT": str(config.mail_port),
        "NEXUS_SMTP_SECURITY": "none",
    }


def _write_services_env(path: Path, urls: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make dev` while it runs; removed when it stops.\n"]
    lines += [f"{name}={url}\n" for name, url in urls.items()]
    path.write_text("".join(lines))


def load_dev_config() -> DevConfig:
    """``NEXUS_DEV_*`` from the environment or ``.env``, as other terminals read them."""
    return DevConfig(
        data_dir=dev_services_env().parent,
        web_port=_port("NEXUS_DEV_WEB_PORT", 5000),
        pg_port=_port("NEXUS_DEV_PG_PORT", 55432),
        redis_port=_port("NEXUS_DEV_REDIS_PORT", 56379),
        mail_port=_port("NEXUS_DEV_MAIL_PORT", 51025),
    )


def _port(name: str, default: int) -> int:
    value = local_value(name) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        sys.exit(f"{name}={value!r} is not a port number")
    return int(value)


def run(config: DevConfig, supervisor: Supervisor | None = None) -> int:
    supervisor = supervisor or Supervisor()
    services_env = config.data_dir / SERVICES_ENV

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        urls = {}
        for name, start in (("DATABASE_URL", _start_postgres), ("REDIS_URL", _start_redis)):
            configured = local_value(name)
            if configured:
                supervisor.say("dev", f"using {name} from the environment")
            urls[name] = configured or start(supervisor, config)
            if supervisor.stopping.is_set():
                return 0
        if local_value("NEXUS_SMTP_HOST"):
            supervisor.say("dev", "using NEXUS_SMTP_HOST from the environment")
        else:
            urls.update(_start_mail(supervisor, config))
        _write_services_env(services_env, urls)
        env = {**os.environ, **urls, "PYTHONUNBUFFERED": "1"}
        flask = [sys.executable, "-m", "flask", "--app", "nexus"]
        migrate = subprocess.run(
            [*flask, "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        for line in migrate.stdout.decode(errors="replace").splitlines():
            supervisor.say("migrate", line)
        if migrate.returncode != 0:
            supervisor.say("dev", "migrations failed; fix them and run `make dev` again")
            return 1
        supervisor.start(
            Program(
                "web",
                [
                    *flask,
                    "run",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(config.web_port),
                    "--reload",
                    "--no-debugger",
                ],
                env=env,
            )
        )
        supervisor.start(Program("worker", [*flask, "worker"], env=env))
        supervisor.say(
            "dev",
            f"ready: http://127.0.0.1:{config.web_port}/healthz  (Ctrl-C stops everything)",
        )
        while not supervisor.stopping.wait(0.25):
            supervisor.check()
        return 0
    except ServiceError as exc:
        supervisor.say("dev", f"error: {exc}")
        return 1
    finally:
        supervisor.stop_all()
        services_env.unlink(missing_ok=True)
        supervisor.say("dev", "stopped")


def _services() -> dict[str, str]:
    values = {k: v for k, v in dotenv_values(dev_services_env()).items() if v}
    values.update({k: v for k in ("DATABASE_URL", "REDIS_URL") if (v := os.environ.get(k))})
    return values


def shell(kind: str) -> NoReturn:  # pragma: no cover - replaces the process; used by hand
    """Replace this process with ``psql`` or ``redis-cli`` on the dev servers."""
    services = _services()
    if kind == "psql":
        url = services.get("DATABASE_URL")
        if not url:
            sys.exit("DATABASE_URL is unset and `make dev` is not running.")
        psql = local_services.find_postgres().tool("psql")
        libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        os.execv(psql, [str(psql), libpq_url])  # noqa: S606 - argv, no shell
    url = services.get("REDIS_URL")
    if not url:
        sys.exit("REDIS_URL is unset and `make dev` is not running.")
    cli = local_services.find_redis().cli
    if cli is None:
        sys.exit("No redis-cli (or valkey-cli) found.")
    os.execv(cli, [str(cli), "-u", url])  # noqa: S606 - argv, no shell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nexus_dev.devstack", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "psql", "redis-cli"],
    )
    args = parser.parse_args(argv)
    if args.command != "run":
        return shell(args.command)
    return run(load_dev_config())


if __name__ == "__main__":
    sys.exit(main())
