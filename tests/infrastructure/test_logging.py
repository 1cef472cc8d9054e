"""Logging: JSON lines in deployed envs, one chain for stdlib records, secrets masked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from nexus.config import Settings
from nexus.infrastructure.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    log_event,
    redact_text,
)


@pytest.fixture
def json_logging(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    configure_logging(settings.model_copy(update={"log_format": "json"}))
    capsys.readouterr()
    yield
    # Back to the session's configuration, off the captured stream.
    configure_logging(settings)
    structlog.contextvars.clear_contextvars()


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return json_lines_of(capsys.readouterr().err)


def json_lines_of(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line]


@pytest.mark.usefixtures("json_logging")
def test_structlog_and_stdlib_both_write_one_json_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    structlog.contextvars.bind_contextvars(request_id="rid-1")
    get_logger("nexus.test").info("media.ingested", media_id=7, fragments=12)
    logging.getLogger("rq.worker").warning("Worker %s: %s", "w1", "cleaning registries")
    first, second = json_lines(capsys)
    assert first["event"] == "media.ingested"
    assert first["fragments"] == 12
    assert first["request_id"] == "rid-1"
    assert first["level"] == "info"
    assert first["logger"] == "nexus.test"
    assert "timestamp" in first
    assert second["event"] == "Worker w1: cleaning registries"
    assert second["request_id"] == "rid-1"
    assert second["logger"] == "rq.worker"
    assert second["level"] == "warning"


@pytest.mark.usefixtures("json_logging")
def test_secrets_never_reach_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    log = get_logger("nexus.test")
    log.info(
        "auth.attempt",
        password="hunter2",
        new_password="hunter3",
        access_token="eyJ.abc.def",
        headers={"Authorization": "Bearer eyJ.abc.def", "Accept": "*/*"},
        url="postgresql://app:s3cret@db/nexus",
        note="sent Authorization: Bearer eyJ.secret.token",
    )
    logging.getLogger("werkzeug").error("login with password=hunter2 from %s", "10.0.0.1")
    output = capsys.readouterr().err
    for secret in ("hunter2", "hunter3", "eyJ.abc.def", "s3cret", "eyJ.secret.token"):
        assert secret not in output
    first, second = (json.loads(line) for line in output.splitlines())
    assert first["password"] == REDACTED
    assert first["headers"] == {"Authorization": REDACTED, "Accept": "*/*"}
    assert first["url"] == f"postgresql://app:{REDACTED}@db/nexus"
    assert second["event"] == f"login with password={REDACTED} from 10.0.0.1"


@pytest.mark.usefixtures("json_logging")
def test_a_shape_seen_before_is_still_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    # The chain remembers, per shape of event, which keys to check, and which
    # texts it found clean: neither may let a later secret through.
    log = get_logger("nexus.test")
    for path in ("/api/v1/items", "/api/v1/items", "/login?password=hunter2"):
        log.info("http.request", path=path, status=200)
    log.info("http.request", path="/api/v1/items", token="t0ps3cret")
    output = capsys.readouterr().err
    assert "hunter2" not in output
    assert "t0ps3cret" not in output
    *_, masked, keyed = json_lines_of(output)
    assert masked["path"] == f"/login?password={REDACTED}"
    assert keyed["token"] == REDACTED


@pytest.mark.usefixtures("json_logging")
def test_log_event_writes_what_info_writes(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.contextvars.bind_contextvars(request_id="rid-2")
    get_logger("nexus.access").info("http.request", method="GET", path="/x?pwd=secret", status=200)
    log_event(
        "nexus.access",
        {"event": "http.request", "method": "GET", "path": "/x?pwd=secret", "status": 200},
    )
    by_info, by_event = json_lines(capsys)
    assert by_info.pop("timestamp")
    assert by_event.pop("timestamp")
    assert by_info == by_event
    assert by_event["path"] == f"/x?pwd={REDACTED}"
    assert by_event["request_id"] == "rid-2"
    assert next(iter(by_event)) == "event"  # the line reads from its event on


@pytest.mark.usefixtures("json_logging")
def test_exceptions_are_structured_and_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ConnectionError("could not connect to postgresql://app:s3cret@db/nexus")
    except ConnectionError:
        get_logger("nexus.test").exception("db.failed")
    [entry] = json_lines(capsys)
    assert entry["event"] == "db.failed"
    assert "s3cret" not in json.dumps(entry)
    assert entry["exception"][0]["exc_type"] == "ConnectionError"  # type: ignore[index]


@pytest.mark.usefixtures("json_logging")
def test_werkzeug_access_lines_are_dropped_but_its_other_lines_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.info(
        '127.0.0.1 - - [22/Nov/2026 03:00:00] "%s" %s %s', "GET /healthz HTTP/1.1", "200", "-"
    )
    werkzeug.info(" * Running on http://127.0.0.1:5000")
    [entry] = json_lines(capsys)
    assert entry["event"] == " * Running on http://127.0.0.1:5000"


def test_console_format_in_local(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings.model_copy(update={"log_format": None}))
    try:
        get_logger("nexus.test").info("hello.world", answer=42)
        err = capsys.readouterr().err
    finally:
        configure_logging(settings)
    assert "hello.world" in err
    assert "answer=42" in err
    assert not err.lstrip().startswith("{")


def test_sql_statements_only_at_debug(settings: Settings) -> None:
    configure_logging(settings.model_copy(update={"log_level": "DEBUG"}))
    try:
        assert logging.getLogger("sqlalchemy.engine").level == logging.INFO
    finally:
        configure_logging(settings)
    assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {REDACTED}"),
        ("redis://default:pw@cache:6379/0", f"redis://default:{REDACTED}@cache:6379/0"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
