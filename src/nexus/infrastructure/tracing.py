"""Traces: OpenTelemetry for Flask, SQLAlchemy and Redis, joined from a request into its jobs.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or a test hands
:func:`install` an exporter): then nothing is instrumented and nothing
costs. On, every request is a server span with its SQL and Redis calls as
children, exported over OTLP/HTTP in batches; the standard ``OTEL_*``
variables (``OTEL_SERVICE_NAME``, headers, sampling) apply.

**Into jobs.** :func:`current_traceparent` is what ``enqueue`` stores in the
job's row (``jobs.trace_parent``); the worker runs each job inside
:func:`job_span`, a consumer span whose parent is that context, so a
request and every job it enqueued are one trace. Work horses are forked
per job: the job's spans are flushed before the horse exits.

**Logs.** With tracing on, every log line carries ``trace_id`` and
``span_id`` (``nexus.infrastructure.logging.add_trace_ids``). Imports no
feature package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, request
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from nexus.infrastructure.logging import get_logger, log_trace_ids

EXTENSION_KEY = "nexus.tracer_provider"
# Where a traced request's ids wait for its access line, written after its span ends.
TRACE_IDS_KEY = "nexus.trace_ids"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_PROPAGATOR = TraceContextTextMapPropagator()
# Set once tracing is installed in this process: the log processor's switch.
_provider: TracerProvider | None = None
log = get_logger(__name__)


def init_app(app: Flask) -> None:
    """Trace ``app`` when an OTLP endpoint is configured; otherwise do nothing at all."""
    if not os.environ.get(ENDPOINT_ENV):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # only imported when used: its protobuf stack is heavy
    )

    provider = install(app, OTLPSpanExporter(), batch=True)
    # Libraries that trace on their own (requests, say) report to it too.
    trace.set_tracer_provider(provider)


def install(app: Flask, exporter: SpanExporter, *, batch: bool = False) -> TracerProvider:
    """Trace ``app`` into ``exporter`` (tests pass an in-memory one, unbatched)."""
    global _provider  # noqa: PLW0603 - one provider per process, as OpenTelemetry has it
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "nexus")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call]
    if _note_trace_ids not in app.after_request_funcs.get(None, []):
        app.after_request(_note_trace_ids)
    engine = app.extensions["nexus.database"].engine
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    app.extensions[EXTENSION_KEY] = provider
    _provider = provider
    log_trace_ids(_current_ids)
    log.info("tracing.enabled", exporter=type(exporter).__name__)
    return provider


def uninstall(app: Flask) -> None:
    """Undo :func:`install` (tests: the rest of the suite runs untraced)."""
    global _provider  # noqa: PLW0603
    FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
    SQLAlchemyInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    provider = app.extensions.pop(EXTENSION_KEY, None)
    if provider is not None:
        provider.shutdown()
    _provider = None
    log_trace_ids(None)


def enabled() -> bool:
    return _provider is not None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with a job; ``None`` if untraced."""
    if _provider is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def job_span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[None]:
    """Run a job inside a span joined to the trace of the request that enqueued it."""
    if _provider is None:
        yield
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})
    tracer = _provider.get_tracer("nexus.jobs")
    try:
        with tracer.start_as_current_span(
            f"job {name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            yield
    finally:
        # A work horse exits with os._exit: what it traced must leave first.
        _provider.force_flush(timeout_millis=5000)


def _note_trace_ids(response: Response) -> Response:
    """Leave the request span's ids for the access line (nexus.api.request_context)."""
    if _provider is not None and (ids := _current_ids()) is not None:
        request.environ[TRACE_IDS_KEY] = ids
    return response


def _current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids, as logs and OTLP write them."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
