"""Settings: sources, per-environment rules, and the one fail-fast message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nexus.config import (
    DEV_PLACEHOLDER_SECRET,
    ConfigError,
    Environment,
    Settings,
    env_name,
    load_settings,
)
from nexus.domains import DOMAINS
from tests.support import REPO_ROOT

STRONG = "x" * 40
URLS = {"DATABASE_URL": "postgresql://app:pw@db:5432/nexus", "REDIS_URL": "redis://cache:6379/0"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No NEXUS_* or URL variables from the developer's shell, and an empty cwd."""
    for key in list(os.environ):
        if key.startswith("NEXUS_") or key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("NEXUS_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def prod_env(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    values = {
        "NEXUS_ENV": "prod",
        **URLS,
        "NEXUS_SECRET_KEY": STRONG,
        "NEXUS_JWT_SECRET": "j" * 40,
        "NEXUS_INTERNAL_SECRET": "i" * 40,
        **overrides,
    }
    set_env(monkeypatch, **values)


def test_local_defaults_run_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **URLS)
    settings = load_settings()
    assert settings.env is Environment.LOCAL
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == DEV_PLACEHOLDER_SECRET
    assert settings.queue_names == ("high", "default", "low")
    assert settings.json_logs is False


def test_postgresql_url_is_normalised_to_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **URLS)
    assert load_settings().database_url == "postgresql+psycopg://app:pw@db:5432/nexus"
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db/nexus")
    assert load_settings().database_url == "postgresql+psycopg://app@db/nexus"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///nexus.db", "driver 'sqlite' is not supported"),
        ("postgresql+psycopg2://db/nexus", "driver 'postgresql+psycopg2' is not supported"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_database_urls_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    set_env(monkeypatch, **{**URLS, "DATABASE_URL": url})
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert f"DATABASE_URL: {message}" in str(raised.value)


def test_one_message_names_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(
        monkeypatch,
        NEXUS_ENV="prod",
        REDIS_URL="http://cache",
        NEXUS_JWT_SECRET="short",
        NEXUS_DEBUG="true",
        NEXUS_DB_POOL_SIZE="0",
    )
    with pytest.raises(ConfigError) as raised:
        load_settings()
    names = [name for name, _ in raised.value.problems]
    assert names == [
        "NEXUS_DEBUG",
        "DATABASE_URL",
        "REDIS_URL",
        "NEXUS_SECRET_KEY",
        "NEXUS_JWT_SECRET",
        "NEXUS_INTERNAL_SECRET",
        "NEXUS_DB_POOL_SIZE",
    ]
    text = str(raised.value)
    assert "NEXUS_ENV=prod" in text
    assert "NEXUS_DEBUG: debug mode is refused in prod" in text
    assert "NEXUS_JWT_SECRET: must be at least 32 bytes in prod" in text
    assert "NEXUS_SECRET_KEY: required in prod" in text
    assert "DATABASE_URL: missing" in text
    assert "short" not in text  # a rejected secret is never echoed


def test_missing_urls_in_local_point_at_make_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL: missing \(set it, or start local"):
        load_settings()


@pytest.mark.parametrize("placeholder", [DEV_PLACEHOLDER_SECRET, "change-me", "CHANGEME"])
def test_deployed_envs_refuse_placeholders(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    prod_env(monkeypatch, NEXUS_ENV="staging", NEXUS_SECRET_KEY=placeholder)
    with pytest.raises(ConfigError, match="NEXUS_SECRET_KEY: is a known placeholder"):
        load_settings()


def test_prod_accepts_strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    prod_env(monkeypatch)
    settings = load_settings()
    assert settings.env is Environment.PROD
    assert settings.json_logs is True
    assert "x" * 40 not in repr(settings)  # secrets never print


def test_secret_from_x_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt"
    secret_file.write_text("f" * 40 + "\n")
    prod_env(monkeypatch, NEXUS_JWT_SECRET_FILE=str(secret_file))
    monkeypatch.delenv("NEXUS_JWT_SECRET")
    settings = load_settings()
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "f" * 40  # trailing newline dropped


def test_database_url_from_x_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "db").write_text("postgresql://app:s3cret@db/nexus")
    prod_env(monkeypatch, DATABASE_URL_FILE=str(tmp_path / "db"))
    monkeypatch.delenv("DATABASE_URL")
    assert load_settings().database_url == "postgresql+psycopg://app:s3cret@db/nexus"


def test_x_and_x_file_together_are_ambiguous(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "jwt").write_text("f" * 40)
    prod_env(monkeypatch, NEXUS_JWT_SECRET_FILE=str(tmp_path / "jwt"))
    with pytest.raises(ConfigError, match="NEXUS_JWT_SECRET: set both NEXUS_JWT_SECRET and"):
        load_settings()


def test_unreadable_x_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prod_env(monkeypatch, NEXUS_SECRET_KEY_FILE=str(tmp_path / "missing"))
    monkeypatch.delenv("NEXUS_SECRET_KEY")
    with pytest.raises(ConfigError, match="NEXUS_SECRET_KEY: cannot read NEXUS_SECRET_KEY_FILE"):
        load_settings()


def test_secrets_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "nexus_internal_secret").write_text("s" * 40)
    (secrets / "NEXUS_JWT_SECRET").write_text("t" * 40)
    prod_env(monkeypatch, NEXUS_SECRETS_DIR=str(secrets))
    monkeypatch.delenv("NEXUS_INTERNAL_SECRET")
    monkeypatch.delenv("NEXUS_JWT_SECRET")
    settings = load_settings()
    assert settings.internal_secret is not None
    assert settings.internal_secret.get_secret_value() == "s" * 40
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "t" * 40


def test_environment_beats_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "NEXUS_JWT_SECRET").write_text("t" * 40)
    prod_env(monkeypatch, NEXUS_SECRETS_DIR=str(secrets))
    settings = load_settings()
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "j" * 40


def test_blank_variables_yield_to_the_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What the compose stack does: blank the variables a .env may hold, and
    # mount the values as files.
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "DATABASE_URL").write_text("postgresql://nexus_app:pw@postgres:5432/nexus\n")
    (secrets / "NEXUS_JWT_SECRET").write_text("t" * 40)
    prod_env(
        monkeypatch,
        NEXUS_SECRETS_DIR=str(secrets),
        DATABASE_URL="",
        MIGRATION_DATABASE_URL="",
        NEXUS_JWT_SECRET="",
        NEXUS_LOG_FORMAT="",
    )
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://nexus_app:pw@postgres:5432/nexus"
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "t" * 40
    assert settings.migration_database_url is None
    assert settings.log_format is None


def test_migrations_connect_as_the_owner_when_one_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_env(monkeypatch, **URLS)
    settings = load_settings()
    assert settings.migrations_url == settings.database_url  # one role does both
    owner = tmp_path / "owner-url"
    owner.write_text("postgresql://owner:pw@db:5432/nexus\n")
    monkeypatch.setenv("MIGRATION_DATABASE_URL_FILE", str(owner))
    settings = load_settings()
    assert settings.migrations_url == "postgresql+psycopg://owner:pw@db:5432/nexus"
    assert settings.database_url == "postgresql+psycopg://app:pw@db:5432/nexus"
    monkeypatch.delenv("MIGRATION_DATABASE_URL_FILE")
    monkeypatch.setenv("MIGRATION_DATABASE_URL", "mysql://owner@db/nexus")
    with pytest.raises(ConfigError, match="MIGRATION_DATABASE_URL: driver 'mysql'"):
        load_settings()


def test_local_reads_dotenv_and_services_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "data" / "dev").mkdir(parents=True)
    (tmp_path / "data" / "dev" / "services.env").write_text(
        "DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:55432/nexus\n"
        "REDIS_URL=redis://127.0.0.1:56379/0\n"
    )
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/0\nNEXUS_LOG_LEVEL=DEBUG\n")
    settings = load_settings()
    assert settings.database_url.endswith("127.0.0.1:55432/nexus")
    assert settings.redis_url == "redis://from-dotenv:6379/0"  # .env beats services.env
    assert settings.log_level == "DEBUG"
    monkeypatch.setenv("REDIS_URL", "redis://from-environment:6379/0")
    assert load_settings().redis_url == "redis://from-environment:6379/0"


def test_deployed_envs_ignore_checkout_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NEXUS_LOG_LEVEL=DEBUG\n")
    prod_env(monkeypatch)
    assert load_settings().log_level == "INFO"


def test_queue_names_must_differ_and_be_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **URLS, NEXUS_QUEUE_LOW="high")
    with pytest.raises(ConfigError, match="queue names must differ"):
        load_settings()
    set_env(monkeypatch, **URLS, NEXUS_QUEUE_LOW="low priority")
    with pytest.raises(ConfigError, match="NEXUS_QUEUE_LOW"):
        load_settings()


def test_invalid_env_name_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, **URLS, NEXUS_ENV="production")
    with pytest.raises(ConfigError, match="NEXUS_ENV: Input should be 'local', 'test', 'staging'"):
        load_settings()


def test_env_example_documents_every_variable() -> None:
    documented = (REPO_ROOT / ".env.example").read_text()
    for field_name, field in Settings.model_fields.items():
        assert env_name(field_name, field) in documented, field_name
    # And every listed domain's own settings.
    for domain in DOMAINS:
        if domain.settings is not None:
            prefix = domain.settings.model_config.get("env_prefix", "")
            for field_name in domain.settings.model_fields:
                assert f"{prefix}{field_name.upper()}" in documented, (domain.name, field_name)
