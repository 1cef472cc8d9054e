"""`make up`'s helper without an engine: its secrets, the published URL, stdlib only.

The stack itself is driven on a real engine by ``tests/test_container.py``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.config import load_settings
from nexus_dev.compose import APP_SECRETS, UpError, web_url, write_secrets
from tests.support import REPO_ROOT


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_secrets_makes_each_secret_once(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "secrets"
    created = write_secrets(directory)
    assert sorted(created) == sorted(path.name for path in directory.iterdir())
    assert len(created) == 7
    assert _mode(directory) == 0o700  # other host users cannot reach them
    assert all(_mode(path) == 0o644 for path in directory.iterdir())  # container users can
    values = {path.name: path.read_text().strip() for path in directory.iterdir()}
    assert len({values[name] for name in APP_SECRETS}) == 3
    assert all(len(values[name]) >= 48 for name in APP_SECRETS)
    owner, app = values["POSTGRES_PASSWORD"], values["NEXUS_APP_DB_PASSWORD"]
    assert owner != app
    assert values["MIGRATION_DATABASE_URL"] == f"postgresql://nexus:{owner}@postgres:5432/nexus"
    assert values["DATABASE_URL"] == f"postgresql://nexus_app:{app}@postgres:5432/nexus"

    assert write_secrets(directory) == []  # never rewritten
    assert {path.name: path.read_text().strip() for path in directory.iterdir()} == values


def test_a_lost_url_is_rebuilt_from_the_kept_password(tmp_path: Path) -> None:
    write_secrets(tmp_path)
    before = (tmp_path / "DATABASE_URL").read_text()
    (tmp_path / "DATABASE_URL").unlink()
    assert write_secrets(tmp_path) == ["DATABASE_URL"]
    assert (tmp_path / "DATABASE_URL").read_text() == before


def test_the_secrets_satisfy_production_rules_as_the_containers_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secrets(tmp_path)
    for name in list(os.environ):
        if name.startswith("NEXUS_") or name.endswith("DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEXUS_ENV", "prod")
    monkeypatch.setenv("NEXUS_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    settings = load_settings()
    assert settings.database_url.startswith("postgresql+psycopg://nexus_app:")
    assert settings.migrations_url.startswith("postgresql+psycopg://nexus:")


@pytest.mark.parametrize(
    ("port", "url"),
    [
        ({"target": 5000, "published": "5200", "host_ip": "127.0.0.1"}, "http://127.0.0.1:5200"),
        ({"target": 5000, "published": "8080", "host_ip": "0.0.0.0"}, "http://127.0.0.1:8080"),  # noqa: S104
        ({"target": 5000, "published": "8080"}, "http://127.0.0.1:8080"),
        ({"target": 5000, "published": "80", "host_ip": "192.0.2.7"}, "http://192.0.2.7:80"),
    ],
)
def test_web_url_is_the_published_address(port: dict[str, object], url: str) -> None:
    assert web_url({"services": {"web": {"ports": [port]}}}) == url


def test_web_url_without_a_published_port_is_an_error() -> None:
    with pytest.raises(UpError, match="publishes no port"):
        web_url({"services": {"web": {"ports": [{"target": 9000, "published": "9000"}]}}})


def test_the_helper_needs_the_standard_library_only(tmp_path: Path) -> None:
    # -S: no site-packages at all, as on a machine where nothing is installed.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "nexus_dev.compose", "secrets"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO_ROOT / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created POSTGRES_PASSWORD, NEXUS_APP_DB_PASSWORD, ")
    assert len(list((tmp_path / "data" / "secrets").iterdir())) == 7


def test_make_up_without_docker_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-S", "-m", "nexus_dev.compose", "up"],
        cwd=tmp_path,
        env={"PATH": str(tmp_path), "PYTHONPATH": str(REPO_ROOT / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "make up: " in result.stderr
    assert "install Docker" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing written before Docker answered
