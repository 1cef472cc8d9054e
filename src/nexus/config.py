"""Settings: every environment variable Nexus reads, validated once, failing fast.

Owns the variable names and defaults, the rules per environment (staging and
prod refuse missing, short or placeholder secrets and debug mode), and where
values come from, highest priority first:

1. the process environment (``NEXUS_JWT_SECRET=...``);
2. ``X_FILE``: a file named by the variable ``X_FILE`` (``NEXUS_JWT_SECRET_FILE``);
3. the secrets directory ``NEXUS_SECRETS_DIR`` (default ``/run/secrets``), one
   file per variable, named like it (Docker, Kubernetes and Vault Agent all
   write secrets this way);
4. in ``local`` only: ``.env``, then ``services.env`` in ``make dev``'s data
   directory (``data/dev/``, or ``NEXUS_DEV_DATA_DIR``), where ``make dev``
   writes the URLs of the servers it started.

Every problem is collected into one :class:`ConfigError` naming each variable.
Imports nothing from Nexus; only ``current_settings`` touches Flask.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "NEXUS_"
DOTENV = Path(".env")
DEV_DATA_DIR = Path("data/dev")
SERVICES_ENV = "services.env"

# Used for every secret left unset in local and test, so a fresh clone runs
# without inventing secrets; staging and prod refuse it by name.
DEV_PLACEHOLDER_SECRET = "nexus-local-development-secret-never-deploy-this"  # noqa: S105
KNOWN_PLACEHOLDERS = frozenset(
    {
        DEV_PLACEHOLDER_SECRET,
        "change-me",
        "changeme",
        "change-me-to-a-random-value-of-at-least-32-bytes",
        "secret",
        "password",
        "your-secret-key",
        "dev",
        "test",
    }
)
MIN_SECRET_BYTES = 32
SECRET_FIELDS = ("secret_key", "jwt_secret", "internal_secret")
# Variables that may carry a password too, and so may also come from files.
FILE_FIELDS = (
    *SECRET_FIELDS,
    "database_url",
    "migration_database_url",
    "redis_url",
    "redis_sentinel_password",
    "smtp_password",
)
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Environment(enum.StrEnum):
    """Where Nexus runs; staging and prod are held to production rules."""

    LOCAL = "local"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"

    @property
    def is_deployed(self) -> bool:
        return self in (Environment.STAGING, Environment.PROD)


class ConfigError(Exception):
    """The configuration is unusable; the message names every bad variable."""

    def __init__(self, env: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"  - {name}: {message}" for name, message in problems]
        super().__init__(
            f"Nexus configuration is invalid (NEXUS_ENV={env}):\n"
            + "\n".join(lines)
            + "\nEvery variable is documented in .env.example."
        )


class _Unreadable:
    """A value a file source could not read: field validation reports it."""

    def __init__(self, message: str) -> None:
        self.message = message


def env_name(field_name: str, field: FieldInfo) -> str:
    """The environment variable that sets ``field_name``."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    return f"{ENV_PREFIX}{field_name.upper()}"


class _SecretFilesSource(PydanticBaseSettingsSource):
    """Reads ``X_FILE`` paths and the secrets directory for secret-bearing fields."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        secrets_dir = Path(os.environ.get(f"{ENV_PREFIX}SECRETS_DIR", "/run/secrets"))
        for field_name in FILE_FIELDS:
            name = env_name(field_name, self.settings_cls.model_fields[field_name])
            file_var = f"{name}_FILE"
            path_text = os.environ.get(file_var)
            if path_text:
                if os.environ.get(name):
                    values[field_name] = _Unreadable(f"set both {name} and {file_var}; keep one")
                else:
                    values[field_name] = _read_secret_file(Path(path_text), file_var)
                continue
            if os.environ.get(name):
                continue  # the environment wins over the secrets directory
            for candidate in (secrets_dir / name, secrets_dir / name.lower()):
                if candidate.is_file():
                    values[field_name] = _read_secret_file(candidate, str(candidate))
                    break
        return values


def _read_secret_file(path: Path, origin: str) -> str | _Unreadable:
    try:
        # Files written by editors and `echo` end in a newline that is not part
        # of the secret.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        return _Unreadable(f"cannot read {origin} ({path}): {exc.strerror}")


class Settings(BaseSettings):
    """Every setting of a Nexus process. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        case_sensitive=False,
        validate_by_name=True,
        hide_input_in_errors=True,
        env_file_encoding="utf-8",
        # A blank variable means "unset": compose blanks what .env may hold
        # for `make dev`, and `NEXUS_LOG_FORMAT=` in .env means the default.
        env_ignore_empty=True,
    )

    # `env` comes first: the validators below read it from `info.data`.
    env: Environment = Environment.LOCAL
    debug: bool = False

    database_url: str = Field(validation_alias="DATABASE_URL")
    # Migrations run as the role that owns the tables; the app connects as a
    # role that may only read and write rows (docs/decisions/0018). Where one
    # role does both (make dev, tests), leave it unset.
    migration_database_url: str | None = Field(
        default=None, validation_alias="MIGRATION_DATABASE_URL"
    )
    redis_url: str = Field(validation_alias="REDIS_URL")

    secret_key: SecretStr | None = Field(default=None, validate_default=True)
    jwt_secret: SecretStr | None = Field(default=None, validate_default=True)
    internal_secret: SecretStr | None = Field(default=None, validate_default=True)
    secrets_dir: Path = Path("/run/secrets")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] | None = None

    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout: float = Field(default=10.0, gt=0, le=300)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    db_connect_timeout: int = Field(default=5, ge=1, le=120)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    # PgBouncer in transaction mode (or another transaction pooler) between
    # Nexus and PostgreSQL: no server-side prepared statements, and the
    # statement timeout set per transaction, not per connection.
    db_transaction_pooler: bool = False

    redis_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    redis_socket_timeout: float = Field(default=5.0, gt=0, le=300)
    # Redis Sentinel: "host:port,host:port". Set, the master of
    # NEXUS_REDIS_SENTINEL_MASTER is found through them, and followed across
    # failovers; REDIS_URL then gives only the database, user and password.
    redis_sentinels: str = ""
    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    redis_sentinel_password: SecretStr | None = None

    health_timeout: float = Field(default=1.0, gt=0, le=10)

    queue_high: str = "high"
    queue_default: str = "default"
    queue_low: str = "low"
    job_timeout: int = Field(default=180, ge=1)
    worker_shutdown_grace: int = Field(default=60, ge=0)
    # fork: a work horse per job (the default; a crashing job cannot take the
    # worker down); simple: jobs run in the worker process (many short jobs).
    worker_mode: Literal["fork", "simple"] = "fork"
    # A running job whose worker has not heartbeated for this long was
    # killed with it: it is retried if it has attempts left, else failed.
    abandoned_job_seconds: int = Field(default=60, ge=6, le=3600)
    # Ended jobs (finished, failed, canceled) are purged this long after ending.
    job_retention_days: int = Field(default=14, ge=1, le=3650)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # E-mail (nexus.mail): the SMTP relay mail jobs send through. Unset host:
    # nothing is sent (each mail job fails, saying so); `make dev` starts a
    # catch-all server and sets it. "starttls" upgrades a plain connection,
    # "tls" is TLS from the start (port 465), "none" is for loopback only.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65_535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=10.0, gt=0, le=120)
    mail_from: str = "Nexus <no-reply@localhost>"
    # The front end's address: links in mails point there (with ?token=...).
    public_url: str = "http://localhost:5000"
    # Whether an account must verify its address before it can sign in.
    require_verified_email: bool = False
    email_verification_hours: int = Field(default=48, ge=1, le=24 * 30)
    password_reset_minutes: int = Field(default=30, ge=5, le=24 * 60)

    # A worker serves its own /metrics on this port (0: not served), bound to
    # this address: Prometheus scrapes each worker there.
    worker_metrics_port: int = Field(default=0, ge=0, le=65_535)
    worker_metrics_address: str = "127.0.0.1"

    registration_mode: Literal["open", "invite", "closed"] = "open"
    invite_hours: int = Field(default=72, ge=1, le=24 * 90)
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    # Argon2id at OWASP's first recommendation (docs/decisions/0012).
    argon2_time_cost: int = Field(default=1, ge=1, le=10)
    argon2_memory_kib: int = Field(default=47_104, ge=8_192, le=1_048_576)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)
    # Hashes running at once on this host (every process sharing
    # hash_slots_dir), and how long a request waits for a slot before 503.
    # Default: half the usable cores, and no wait: a login flood then leaves
    # the other half to everything else (docs/reliability.md measures it).
    # Waiting would hold a request thread idle.
    max_concurrent_hashes: int | None = Field(default=None, ge=1, le=64)
    hash_wait_seconds: float = Field(default=0.0, ge=0, le=60)
    # Where the slots' lock files live; default <temp dir>/nexus-hash-slots-<uid>.
    hash_slots_dir: Path | None = None
    # How long a token family's state is cached in Redis (revocations also
    # delete the cache entry at once).
    auth_cache_seconds: int = Field(default=30, ge=0, le=3600)

    # Rate limits (nexus.api.ratelimit, docs/decisions/0031): "N/second",
    # "N/minute", "N/hour" or "N/day", or several joined by ";". The API limit
    # is per client (the user once signed in, else the address) across every
    # /api route; the others are per address (login, registration, refresh)
    # or per user (password change), on top of it.
    rate_limits_enabled: bool = True
    rate_limit_api: str = "300/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "20/hour"
    rate_limit_refresh: str = "60/minute"
    rate_limit_password_change: str = "5/minute"  # noqa: S105 - a rate, not a password
    # Mails on request: verification resent (per user), reset links (per
    # address, and per account). Over these, nothing is sent; a reset request
    # still answers 202, as for an unknown address.
    rate_limit_verify_resend: str = "3/hour"
    rate_limit_password_forgot: str = "5/hour"  # noqa: S105 - a rate
    rate_limit_password_forgot_account: str = "3/hour"  # noqa: S105 - a rate
    # Login lockout (nexus.accounts.lockout): this many failed logins for one
    # account within the window lock its login for a cooling-off period that
    # doubles each time, up to the maximum; 0 failures turns it off. An address
    # the account signed in from within the last N days is never locked out.
    login_lockout_failures: int = Field(default=5, ge=0, le=1000)
    login_lockout_window_seconds: int = Field(default=300, ge=1, le=86_400)
    login_lockout_seconds: int = Field(default=60, ge=1, le=86_400)
    login_lockout_max_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)
    login_known_address_days: int = Field(default=30, ge=0, le=365)
    # How many proxies in front of Nexus add X-Forwarded-For/-Proto: the
    # client's address is taken that many hops back. 0: the headers are
    # ignored, and the peer is the client.
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    # Origins allowed to call the API from a browser (comma-separated, e.g.
    # "https://app.example.com"); none by default.
    cors_origins: str = ""
    cors_allow_credentials: bool = False
    # Strict-Transport-Security max-age when served over HTTPS; 0: not sent.
    hsts_seconds: int = Field(default=0, ge=0, le=2 * 365 * 86_400)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced below
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings' own secrets-dir source knows neither X_FILE nor
        # our variable names without prefix (DATABASE_URL), so ours replaces it.
        # Ours goes before the environment so it can report "both X and
        # X_FILE"; it yields to X itself by returning nothing for it.
        return (init_settings, _SecretFilesSource(settings_cls), env_settings, dotenv_settings)

    @field_validator(*FILE_FIELDS, mode="before")
    @classmethod
    def _report_unreadable(cls, value: Any) -> Any:
        if isinstance(value, _Unreadable):
            raise ValueError(value.message)
        return value

    @field_validator("debug")
    @classmethod
    def _no_debug_when_deployed(cls, value: bool, info: ValidationInfo) -> bool:
        env = info.data.get("env")
        if value and env is not None and env.is_deployed:
            raise ValueError(f"debug mode is refused in {env}")
        return value

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        raise ValueError(
            f"driver {url.drivername!r} is not supported: use postgresql:// or postgresql+psycopg://"
        )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(*SECRET_FIELDS)
    @classmethod
    def _secret_policy(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        env = info.data.get("env")
        if env is None:
            return value  # NEXUS_ENV itself is invalid; that error is reported
        if not env.is_deployed:
            return value or SecretStr(DEV_PLACEHOLDER_SECRET)
        if value is None:
            raise ValueError(f"required in {env}")
        raw = value.get_secret_value()
        if raw.strip().lower() in KNOWN_PLACEHOLDERS:
            raise ValueError(
                "is a known placeholder; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if len(raw.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes in {env}")
        return value

    @field_validator(
        "rate_limit_api",
        "rate_limit_login",
        "rate_limit_register",
        "rate_limit_refresh",
        "rate_limit_password_change",
        "rate_limit_verify_resend",
        "rate_limit_password_forgot",
        "rate_limit_password_forgot_account",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            if not parse_many(value):
                raise ValueError
        except ValueError:
            raise ValueError(
                'must be like "10/minute" (or several: "10/minute;100/hour")'
            ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        for origin in _split(value):
            if origin == "*":
                continue
            if not _ORIGIN.match(origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return value

    @field_validator("cors_allow_credentials")
    @classmethod
    def _no_wildcard_with_credentials(cls, value: bool, info: ValidationInfo) -> bool:
        env = info.data.get("env")
        origins = _split(info.data.get("cors_origins") or "")
        if value and "*" in origins and env is not None and env.is_deployed:
            raise ValueError(f'"*" origins with credentials are refused in {env}')
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return _split(self.cors_origins)

    @field_validator("redis_sentinels")
    @classmethod
    def _check_sentinels(cls, value: str, info: ValidationInfo) -> str:
        for item in _split(value):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
                raise ValueError(f"each sentinel is host:port, not {item!r}")
        if _split(value) and str(info.data.get("redis_url", "")).startswith("unix://"):
            raise ValueError("sentinels name TCP servers: REDIS_URL cannot be unix://")
        return value

    @property
    def redis_sentinel_addresses(self) -> list[tuple[str, int]]:
        """The sentinels, as (host, port); empty: Redis is REDIS_URL's server."""
        pairs = (item.rpartition(":") for item in _split(self.redis_sentinels))
        return [(host.strip("[]"), int(port)) for host, _, port in pairs]

    @field_validator("queue_high", "queue_default", "queue_low")
    @classmethod
    def _check_queue_name(cls, value: str) -> str:
        if not _QUEUE_NAME.match(value):
            raise ValueError("1-64 characters of letters, digits and . _ : -")
        return value

    @property
    def queue_names(self) -> tuple[str, str, str]:
        """Queue names in the order a worker serves them: high, default, low."""
        return (self.queue_high, self.queue_default, self.queue_low)

    @property
    def migrations_url(self) -> str:
        """The URL migrations connect with: the owner's, else the app's."""
        return self.migration_database_url or self.database_url

    @property
    def hash_slots(self) -> int:
        """How many password hashes may run at once on this host."""
        if self.max_concurrent_hashes is not None:
            return self.max_concurrent_hashes
        return max(1, len(os.sched_getaffinity(0)) // 2)

    @property
    def hash_slots_path(self) -> Path:
        if self.hash_slots_dir is not None:
            return self.hash_slots_dir
        return Path(tempfile.gettempdir()) / f"nexus-hash-slots-{os.getuid()}"

    @property
    def json_logs(self) -> bool:
        if self.log_format is not None:
            return self.log_format == "json"
        return self.env.is_deployed


def local_value(name: str) -> str | None:
    """A developer's setting: from the environment, else from ``.env``."""
    value = os.environ.get(name)
    if value:
        return value
    if DOTENV.is_file():
        return dotenv_values(DOTENV).get(name) or None
    return None


def dev_services_env() -> Path:
    """The file where ``make dev`` keeps its servers' URLs while it runs.

    In its data directory: ``NEXUS_DEV_DATA_DIR`` (environment or ``.env``),
    default ``data/dev``. The supervisor and every other terminal's
    ``flask --app nexus ...`` find it through this one function.
    """
    return Path(local_value("NEXUS_DEV_DATA_DIR") or DEV_DATA_DIR) / SERVICES_ENV


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, or raise one :class:`ConfigError`.

    ``overrides`` take precedence over everything (tests and tools use them).
    """
    env = os.environ.get(f"{ENV_PREFIX}ENV", overrides.get("env", "local"))
    env = str(env).strip().lower()
    # Only a developer's machine reads files from the checkout; a deployed
    # process gets its configuration from its environment and secrets alone.
    env_files = (dev_services_env(), DOTENV) if env == Environment.LOCAL else None
    try:
        settings = Settings(_env_file=env_files, **overrides)
    except ValidationError as exc:
        raise ConfigError(env, _problems(exc)) from None
    names = settings.queue_names
    if len(set(names)) != len(names):
        raise ConfigError(env, [("NEXUS_QUEUE_*", f"queue names must differ, got {names}")])
    return settings


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        info = Settings.model_fields.get(field)
        name = env_name(field, info) if info is not None else field
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "missing"
            if name in ("DATABASE_URL", "REDIS_URL"):
                message += " (set it, or start local servers with `make dev`)"
        problems.append((name, message))
    return problems


def current_settings() -> Settings:
    """The settings of the running Flask app (inside a request, job or command)."""
    from flask import current_app  # noqa: PLC0415 - keeps this module Flask-free to import

    settings: Settings = current_app.extensions["nexus.settings"]
    return settings
