"""``make up``: the Docker Compose stack, its secrets, and the wait until it is healthy.

Runs on the host's ``python3`` with the standard library only: ``make up``
needs Docker and Python, not the development venv.

1. Secrets: one file per secret under ``data/secrets/`` (the directory
   ``0700``), written once with fresh random values and mounted by compose at
   ``/run/secrets``. A file that exists is never rewritten.
2. If the project's PostgreSQL volume already exists but a database password
   is missing, new passwords would lock the stack out of its own data: stop
   and say what to do instead.
3. ``docker compose up --build --detach``.
4. Wait for ``/healthz`` to answer 200 on the published address. If the
   ``migrate`` container fails meanwhile, stop at once with its log.

``python3 -m nexus_dev.compose secrets`` does step 1 alone, for running
``docker compose`` by hand.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SECRETS_DIR = Path("data/secrets")
OWNER, APP_ROLE, DATABASE = "nexus", "nexus_app", "nexus"
PASSWORDS = ("POSTGRES_PASSWORD", "NEXUS_APP_DB_PASSWORD")
APP_SECRETS = ("NEXUS_SECRET_KEY", "NEXUS_JWT_SECRET", "NEXUS_INTERNAL_SECRET")
POSTGRES_VOLUME = "postgres-data"


class UpError(Exception):
    """``make up`` cannot go on; the message says why and what to do."""


def _database_url(role: str, password: str) -> str:
    return f"postgresql://{role}:{password}@postgres:5432/{DATABASE}"


def write_secrets(directory: Path) -> list[str]:
    """Create each missing secret file; return the names created."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)  # only this user can reach the files on the host
    created = []

    def ensure(name: str, value: str) -> str:
        path = directory / name
        if path.exists():
            return path.read_text().strip()
        path.write_text(value + "\n")
        # Readable inside the containers, whose users (postgres, 10001) are
        # not the file's owner; the directory above keeps other host users out.
        path.chmod(0o644)
        created.append(name)
        return value

    owner_password = ensure("POSTGRES_PASSWORD", secrets.token_urlsafe(24))
    app_password = ensure("NEXUS_APP_DB_PASSWORD", secrets.token_urlsafe(24))
    ensure("MIGRATION_DATABASE_URL", _database_url(OWNER, owner_password))
    ensure("DATABASE_URL", _database_url(APP_ROLE, app_password))
    for name in APP_SECRETS:
        ensure(name, secrets.token_urlsafe(48))
    return created


def _docker(*args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        check=False,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


def project() -> dict[str, Any]:
    """The compose project as compose resolves it (name, ports, volumes)."""
    result = _docker("compose", "config", "--format", "json")
    if result.returncode != 0:
        raise UpError(f"`docker compose config` failed:\n{result.stderr.strip()}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def volume_exists(name: str) -> bool:
    return _docker("volume", "inspect", name).returncode == 0


def check_passwords(directory: Path, volume: str) -> None:
    """Refuse to invent passwords for a database that already exists."""
    missing = [name for name in PASSWORDS if not (directory / name).exists()]
    if missing and volume_exists(volume):
        raise UpError(
            f"The PostgreSQL volume {volume} already holds a database, but "
            f"{', '.join(str(directory / name) for name in missing)} is missing: new "
            "passwords would not open it.\n"
            f"  - Restore {directory}/ from where you keep it, then run `make up` again; or\n"
            f"  - start afresh, deleting the stack's data: `docker compose down --volumes`"
            f" (or `docker volume rm {volume}`), then `make up`."
        )


def web_url(config: dict[str, Any]) -> str:
    """The published address of the web service's port 5000."""
    for port in config["services"]["web"].get("ports", []):
        if int(port["target"]) == 5000:
            host = port.get("host_ip") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
            return f"http://{host}:{port['published']}"
    raise UpError("the web service publishes no port for 5000")


def _healthz(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=3) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (OSError, ValueError):
        return 0, None


def _migrate_failure() -> str | None:
    """The migrate container's log if it exited with an error, else ``None``."""
    result = _docker("compose", "ps", "--all", "--format", "json", "migrate")
    if result.returncode != 0 or not result.stdout.strip():
        return None
    lines = result.stdout.strip().splitlines()
    # One JSON object per line (compose >= 2.21) or one array (older).
    rows = json.loads(lines[0]) if lines[0].startswith("[") else [json.loads(x) for x in lines]
    for row in rows:
        if row.get("State") == "exited" and int(row.get("ExitCode", 0)) != 0:
            logs = _docker("compose", "logs", "--no-color", "--tail", "40", "migrate")
            return (logs.stdout + logs.stderr).strip()
    return None


def _check_migrations() -> None:
    """Fail with the migrate container's log (and a hint) if it exited with an error."""
    log = _migrate_failure()
    if log is None:
        return
    hint = ""
    if "password authentication failed" in log:
        hint = (
            "\nThe database was created with other passwords than those in "
            f"{SECRETS_DIR}/. Restore the old files, or start afresh with "
            "`docker compose down --volumes` (this deletes the data)."
        )
    raise UpError(f"the migrations failed:\n{log}{hint}")


def wait_healthy(url: str, timeout: float) -> None:
    """Poll ``/healthz`` until it answers 200, or fail with what went wrong."""
    deadline = time.monotonic() + timeout
    status, body = 0, None
    while time.monotonic() < deadline:
        status, body = _healthz(url)
        if status == 200:
            return
        _check_migrations()
        time.sleep(1)
    raise UpError(
        f"{url}/healthz did not answer 200 within {timeout:g} s (last: {status} {body}); "
        "see `docker compose ps` and `make logs`"
    )


def up(timeout: float) -> str:
    config = project()
    volume = config["volumes"][POSTGRES_VOLUME]["name"]  # <project>_postgres-data
    check_passwords(SECRETS_DIR, volume)
    created = write_secrets(SECRETS_DIR)
    if created:
        print(f"created {len(created)} secrets in {SECRETS_DIR}/")  # noqa: T201
    if _docker("compose", "up", "--build", "--detach", capture=False).returncode != 0:
        _check_migrations()  # web and worker wait on them: the usual cause
        raise UpError("`docker compose up` failed (see above)")
    url = web_url(config)
    wait_healthy(url, timeout)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nexus_dev.compose", description=__doc__)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "secrets"])
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    args = parser.parse_args(argv)
    try:
        if args.command == "secrets":
            created = write_secrets(SECRETS_DIR)
            print(f"created {', '.join(created) or 'nothing'} in {SECRETS_DIR}/")  # noqa: T201
            return 0
        url = up(args.timeout)
    except UpError as error:
        print(f"make up: {error}", file=sys.stderr)  # noqa: T201
        return 1
    except FileNotFoundError as error:  # no `docker` on PATH
        print(f"make up: {error.strerror}: {error.filename} (install Docker)", file=sys.stderr)  # noqa: T201
        return 1
    print(f"Nexus is up: {url}  (health: {url}/healthz)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
