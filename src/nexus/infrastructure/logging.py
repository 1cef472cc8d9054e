"""Logging: one structlog processor chain for structlog and stdlib records alike.

Owns the processor chain (context variables, level, timestamp, redaction), the
renderer choice (console locally, one JSON object per line in staging/prod)
and the stdlib bridge through ``ProcessorFormatter``, so werkzeug, SQLAlchemy,
Alembic, RQ and gunicorn records look like ours and carry the same
``request_id``. Redaction lives here so that no caller can forget it.

Nexus's own lines (the access line of every request among them) take the
short road: structlog's native bound logger renders them (JSON by orjson)
and writes the line to stderr itself, never through stdlib ``logging``'s
records, handlers and formatters. Loggers are cached on first use; the
chain they share is one list, changed in place when logging is configured
again (tests do), and the level is checked by a processor, so a cached
logger follows every change. In JSON mode that chain is one processor, and
the access line skips the bound logger altogether (:func:`log_event`).
Imports no feature package.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog
import structlog.tracebacks
from structlog.typing import EventDict, Processor, WrappedLogger

from nexus.config import Settings, load_settings

REDACTED = "[REDACTED]"
# Keys whose values are never logged, wherever they appear in an event.
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?$|secret|token|authorization|cookie|api[_-]?key|credential|hash$",
    re.IGNORECASE,
)
# Values that carry a credential inside a longer text (an exception message, a
# stdlib log line, a URL).
_SENSITIVE_TEXT = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b(password|passwd|pwd)=[^\s&;]+"), r"\1=" + REDACTED),
)


# Every pattern above needs one of these; most values (a path, a status, an
# id) have none, and five substring tests (cheaper than one regex search)
# rule out all three substitutions.
def _may_be_sensitive(text: str) -> bool:
    lowered = text.lower()
    return (
        "://" in lowered
        or "bearer" in lowered
        or "basic" in lowered
        or "passw" in lowered
        or "pwd" in lowered
    )


def redact_text(text: str) -> str:
    """``text`` with bearer tokens, URL passwords and ``password=`` values masked."""
    if not _may_be_sensitive(text):
        return text
    for pattern, replacement in _SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _is_sensitive_key(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _redact_value(key: str, value: Any) -> Any:
    if _is_sensitive_key(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


# Fields the logging chain itself writes, never from outside: nothing to mask.
_OWN_KEYS = frozenset(
    {"timestamp", "level", "logger", "request_id", "trace_id", "span_id", "exc_info"}
)
_SKIP, _MASK, _CHECK = 0, 1, 2
# What to do with each key, worked out once: events reuse a small set of keys,
# and every request logs one line. Bounded, in case keys come from data.
_VERDICTS: dict[str, int] = {}
# Per shape of event (its keys, in order: every access line has the same),
# the keys to mask and the keys whose values to check. Bounded likewise.
_PLANS: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
# No secret shape above fits in fewer characters ("pwd=x").
_SHORTEST_SECRET = 5
# Texts already found clean: an event's name, a route, a method and an
# address recur on every line. Bounded in count and length; past the bound,
# a text is checked each time (the same answer, a little slower).
_CLEAN: set[str] = set()
_CLEAN_LIMIT = 1024
_CLEAN_LENGTH = 128
# Values with nothing to mask, told apart by a cheap type test (a status, a duration).
_SCALARS = frozenset({int, float, bool, type(None)})


def _verdict(key: str) -> int:
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _SKIP if key in _OWN_KEYS else _MASK if _is_sensitive_key(key) else _CHECK
        if len(_VERDICTS) < 4096:
            _VERDICTS[key] = verdict
    return verdict


def _plan(keys: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    plan = (
        tuple(key for key in keys if _verdict(key) == _MASK),
        tuple(key for key in keys if _verdict(key) == _CHECK),
    )
    if len(_PLANS) < 4096:
        _PLANS[keys] = plan
    return plan


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: mask secrets by key name and by shape, before any renderer."""
    keys = tuple(event_dict)
    mask, check = _PLANS.get(keys) or _plan(keys)
    for key in mask:
        event_dict[key] = REDACTED
    for key in check:
        value = event_dict[key]
        kind = type(value)
        if kind is str or (kind not in _SCALARS and isinstance(value, str)):
            if len(value) < _SHORTEST_SECRET or value in _CLEAN:
                continue
            if _may_be_sensitive(value):
                event_dict[key] = redact_text(value)
            elif len(_CLEAN) < _CLEAN_LIMIT and len(value) <= _CLEAN_LENGTH:
                _CLEAN.add(value)
        elif kind not in _SCALARS and isinstance(value, Mapping):
            event_dict[key] = _redact_value(key, value)
    return event_dict


def _redact_structure(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_structure(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact_structure(item) for key, item in value.items()}
    return value


def _redact_rendered_exception(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    # Tracebacks are rendered late (after `redact`); an exception message may
    # quote a connection string or a header.
    if "exception" in event_dict:
        event_dict["exception"] = _redact_structure(event_dict["exception"])
    return event_dict


class _DropWerkzeugAccessLines(logging.Filter):
    """The app writes the one access line per request; werkzeug's is a duplicate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and " - - [" in record.msg)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    A handler that kept the stream it was built with would write to a closed
    file once a test runner or a daemonising tool swapped ``sys.stderr``.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


# Set by nexus.infrastructure.tracing when it is on: then every line says
# which trace and span it belongs to.
_trace_ids: Callable[[], tuple[str, str] | None] | None = None


def log_trace_ids(source: Callable[[], tuple[str, str] | None] | None) -> None:
    """Add ``trace_id`` and ``span_id`` from ``source`` to every line (``None``: stop)."""
    global _trace_ids  # noqa: PLW0603 - one switch per process
    _trace_ids = source


def add_trace_ids(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    if _trace_ids is not None and (ids := _trace_ids()) is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redact,
    ]


def _dumps(event_dict: Any, **_kw: Any) -> str:
    """One JSON object; values orjson cannot take (a 5,000-digit int, a set) as their repr."""
    try:
        rendered: bytes = orjson.dumps(event_dict, default=repr)
        return rendered.decode()
    except TypeError:
        return json.dumps(event_dict, default=repr)


class _StderrLogger:
    """Writes each rendered line to whatever ``sys.stderr`` is when it is logged.

    One write per line under a lock, so lines from threads never interleave;
    never a stream kept from configuration time (see :class:`StderrHandler`).
    """

    _lock = threading.Lock()

    def __init__(self, name: str | None = None) -> None:
        self.name = name or "nexus"

    def msg(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_threshold = logging.INFO


_LEVEL_NAMES = {"warn": "warning", "exception": "error", "fatal": "critical"}
# The timestamp's whole seconds, formatted once per second.
_second: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    """Now, in UTC, as ISO 8601 with microseconds (structlog's TimeStamper's format)."""
    global _second  # noqa: PLW0603 - a one-entry cache; a tuple swap is atomic
    now = time.time()
    whole = int(now)
    if _second[0] != whole:
        formatted = datetime.datetime.fromtimestamp(whole, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        _second = (whole, formatted)
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def _stamp(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Level filter, logger name, level and timestamp: one processor, not four."""
    # A processor, not a filtering wrapper class: cached loggers follow a new level.
    if _LEVELS.get(method, logging.INFO) < _threshold:
        raise structlog.DropEvent
    event_dict["logger"] = logger.name
    event_dict["level"] = _LEVEL_NAMES.get(method, method)
    event_dict["timestamp"] = _timestamp()
    return event_dict


def _exception_renderer() -> Processor:
    # Frame locals may hold passwords and tokens: never render them.
    return structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )


def _final_processors(*, json_logs: bool) -> list[Processor]:
    if json_logs:
        return [
            _exception_renderer(),
            _redact_rendered_exception,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
    return [
        structlog.processors.format_exc_info,
        _redact_rendered_exception,
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
    ]


def _json_line_renderer() -> Processor:
    """The whole chain of a JSON line as one processor: what ``_PROCESSORS`` is in JSON mode.

    The same steps, in the same order, as the console chain; the rarely
    needed ones (a stack, an exception) only when the event asks for them.
    One call instead of eight is a tenth of the cost of every line.
    """
    stack = structlog.processors.StackInfoRenderer()
    exception = _exception_renderer()
    merge = structlog.contextvars.merge_contextvars

    def render(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        _stamp(logger, method, event_dict)
        merge(logger, method, event_dict)
        add_trace_ids(logger, method, event_dict)
        if "stack_info" in event_dict:
            stack(logger, method, event_dict)
        redact(logger, method, event_dict)
        if "exc_info" in event_dict:
            exception(logger, method, event_dict)
            _redact_rendered_exception(logger, method, event_dict)
        return _dumps(event_dict)

    return render


def _stdlib_formatter(final: list[Processor]) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.PositionalArgumentsFormatter()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )


def stdlib_formatter() -> logging.Formatter:
    """The formatter of stdlib records, as the environment's settings ask (for servers' configs).

    granian's logging configuration names it, so the server's own lines
    (workers started, stopped) look like the app's.
    """
    return _stdlib_formatter(_final_processors(json_logs=load_settings().json_logs))


# The one list every cached logger holds; configure_logging changes it in place.
_PROCESSORS: list[Processor] = []


def configure_logging(settings: Settings) -> None:
    """Route structlog and the stdlib root logger through one chain to stderr.

    Safe to call more than once (tests build many apps): it replaces, never
    stacks, the root handler, and cached loggers take the new chain.
    """
    global _threshold  # noqa: PLW0603 - one level per process
    _threshold = logging.getLevelName(settings.log_level)
    final = _final_processors(json_logs=settings.json_logs)
    if settings.json_logs:
        _PROCESSORS[:] = [_json_line_renderer()]
    else:
        _PROCESSORS[:] = [
            _stamp,
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.StackInfoRenderer(),
            redact,
            *final,
        ]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=_StderrLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    handler = StderrHandler()
    handler.setFormatter(_stdlib_formatter(final))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)

    werkzeug = logging.getLogger("werkzeug")
    werkzeug.filters = [f for f in werkzeug.filters if not isinstance(f, _DropWerkzeugAccessLines)]
    werkzeug.addFilter(_DropWerkzeugAccessLines())
    # SQL statements at INFO would log bound parameters (password hashes,
    # e-mail addresses); ask for them explicitly with NEXUS_LOG_LEVEL=DEBUG.
    logging.getLogger("sqlalchemy.engine").setLevel(
        logging.INFO if settings.log_level == "DEBUG" else logging.WARNING
    )
    # Alembic announces each of its plugins at INFO whenever it is imported.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


Logger = structlog.typing.FilteringBoundLogger
# Loggers for log_event, by name: a _StderrLogger is what every bound logger wraps.
_WRAPPED: dict[str, _StderrLogger] = {}


def log_event(name: str, event_dict: dict[str, Any]) -> None:
    """Log ``event_dict`` at info, exactly as ``get_logger(name).info(**event_dict)`` would.

    For the line every request writes (``event_dict`` holds ``event`` and its
    fields, in the order they are to appear): structlog's lazy proxy, its
    bound-logger copy and the keyword arguments cost more than rendering the
    line. The same chain runs (capturing tests see the event as ever); call
    it once :func:`configure_logging` has made the chain (``create_app`` does).
    """
    logger = _WRAPPED.get(name)
    if logger is None:
        logger = _WRAPPED.setdefault(name, _StderrLogger(name))
    line: Any = event_dict
    try:
        for processor in _PROCESSORS:
            line = processor(logger, "info", line)
    except structlog.DropEvent:
        return
    logger.msg(line)


def get_logger(name: str) -> Logger:
    """A structlog logger named like the module that uses it."""
    logger: Logger = structlog.get_logger(name)
    return logger
