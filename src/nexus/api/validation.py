"""Request validation: pydantic models for bodies and query strings, one decorator.

Owns ``@validate(body=Model, query=Model)``, which parses the request into
model instances passed to the view as ``body=`` / ``query=``, and turns every
way a request can be wrong into a problem: not JSON → 415, malformed JSON or
a failed model → 400 with ``errors: [{"field", "message"}]``. A route that
takes files names a form model too (``form=Model``, its file fields typed
``UploadedFile``): a ``multipart/form-data`` request is then read into that
model, and the view gets whichever of the two the client sent as ``body=``. The models and
those codes are declared in the view's contract (``nexus.api.contract``), so
the OpenAPI document is generated from the same source.

Put ``@validate`` innermost (just above the function): authentication and
authorization decorators above it run first, so the order of checks is
401 → 403 → 400.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from flask import current_app, request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from werkzeug.exceptions import RequestEntityTooLarge

from nexus.api.contract import declare
from nexus.api.errors import ApiError, ErrorCode

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)


class RequestModel(BaseModel):
    """Base of request models: unknown fields are an error, not silently dropped.

    No string anywhere in a request may hold a NUL character: PostgreSQL
    cannot store one in text, and no legitimate client sends one.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        if _holds_nul(value):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


def _holds_nul(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if depth > 32:  # deeper than any request model; the model will refuse it anyway
        return False
    if isinstance(value, dict):
        return any(_holds_nul(k, depth + 1) or _holds_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item, depth + 1) for item in value)
    return False


@dataclass(frozen=True)
class UploadedFile:
    """One file of a multipart request, read whole (the route's body limit bounds it)."""

    filename: str
    content_type: str
    content: bytes


def _uploaded_file(value: Any) -> UploadedFile:
    if not isinstance(value, UploadedFile):
        raise ValueError("must be a file part (multipart/form-data with a filename)")
    return value


# A form field that holds a file: ``file: File``. The document calls it binary.
File = Annotated[
    UploadedFile,
    PlainValidator(_uploaded_file),
    WithJsonSchema({"type": "string", "format": "binary"}),
]


def validate(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    field_codes: Mapping[str, ErrorCode] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Validate the request and pass ``body=`` / ``query=`` model instances to the view.

    With ``form``, a ``multipart/form-data`` request is read into that model
    and passed as ``body=`` (a JSON one into ``body``'s, if there is one).
    ``field_codes`` gives a more specific 400 code when only those fields fail,
    e.g. ``{"name": ErrorCode.E_NAME_INVALID}``.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if query is not None:
                kwargs["query"] = parse_query(query, field_codes=field_codes)
            if form is not None and (body is None or not request.is_json):
                kwargs["body"] = parse_form(
                    form, field_codes=field_codes, json_too=body is not None
                )
            elif body is not None:
                kwargs["body"] = parse_body(body, field_codes=field_codes)
            return view(*args, **kwargs)

        codes = [ErrorCode.E_INVALID_REQUEST, *(field_codes or {}).values()]
        if body is not None or form is not None:
            codes += [ErrorCode.E_PAYLOAD_TOO_LARGE, ErrorCode.E_UNSUPPORTED_MEDIA_TYPE]
        contract = declare(wrapper, codes=codes, body=body, query=query)
        contract.form = form
        return wrapper

    return decorator


MULTIPART = "multipart/form-data"


def parse_form(
    model: type[M], *, field_codes: Mapping[str, ErrorCode] | None = None, json_too: bool = False
) -> M:
    """A ``multipart/form-data`` request as ``model``, its files read as ``UploadedFile``.

    werkzeug parses the parts (streaming files to disk past 500 KB) and
    enforces the route's body limit, chunked or not: 413 beyond it.
    """
    if request.mimetype != MULTIPART:
        wanted = f"application/json or {MULTIPART}" if json_too else MULTIPART
        raise ApiError(
            ErrorCode.E_UNSUPPORTED_MEDIA_TYPE,
            f"Expected Content-Type {wanted}, got {request.mimetype or 'none'}.",
        )
    try:
        fields = request.form
        files = request.files
    except (ValueError, EOFError) as exc:  # a part cut short, a broken boundary
        raise _invalid([_field_error("body", f"Malformed multipart body: {exc}.")]) from None
    values: dict[str, Any] = {}
    for key, items in fields.lists():
        values[key] = items[0] if len(items) == 1 else items
    for key, parts in files.lists():
        read = []
        for part in parts:
            try:
                read.append(UploadedFile(part.filename or "", part.mimetype or "", part.read()))
            finally:
                part.close()  # a part past 500 KB is a temporary file: closed once read
        values[key] = read[0] if len(read) == 1 else read
    return _validate(model, values, field_codes)


def parse_body(model: type[M], *, field_codes: Mapping[str, ErrorCode] | None = None) -> M:
    """The JSON body as ``model``, or an :class:`ApiError` saying what is wrong."""
    if not request.is_json:
        raise ApiError(
            ErrorCode.E_UNSUPPORTED_MEDIA_TYPE,
            f"Expected Content-Type application/json, got {request.mimetype or 'none'}.",
        )
    raw = read_body()
    try:
        # Decoded here, not by json.loads: it would guess UTF-16 or UTF-32 from
        # the first bytes, and JSON on the wire is UTF-8 (RFC 8259).
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid([_field_error("body", "The body is not valid UTF-8.")]) from None
    except json.JSONDecodeError as exc:
        message = f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        raise _invalid([_field_error("body", message)]) from None
    except RecursionError:
        raise _invalid([_field_error("body", "The JSON is nested too deeply.")]) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise _invalid([_field_error("body", f"Malformed JSON: {exc}.")]) from None
    del payload  # parsed only to report malformed JSON in our words; pydantic reads the text
    return _validate(model, raw, field_codes, from_json=True)


def read_body() -> bytes:
    """The whole body: 413 past the route's limit however it is framed, 400 if unreadable.

    With a Content-Length, werkzeug reads it (a declared length over the limit
    was refused before the view). A chunked body has no declared length:
    werkzeug's limited stream would stop at the limit and hand over the
    truncated body, so it is read here, one byte past the limit, to tell "at
    the limit" from "over it". Whatever the server raises while reading (a
    malformed chunk size, a client gone mid-body) is the client's framing.
    """
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=True)
    limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = stream.read(min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except Exception as exc:  # the server's parser: gunicorn's InvalidChunkSize, NoMoreData...
        raise _invalid(
            [_field_error("body", f"The body could not be read: {type(exc).__name__}.")]
        ) from None
    if size > limit:
        raise RequestEntityTooLarge
    return b"".join(chunks)


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T09:30:00Z")
    return value


# A timestamp in a query string: RFC 3339 with its offset, as the document
# says (`format: date-time`), not whatever else pydantic would read as a
# time (a bare date, a number of seconds).
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]


def parse_query(model: type[M], *, field_codes: Mapping[str, ErrorCode] | None = None) -> M:
    """The query string as ``model``; a key given twice becomes a list."""
    values = {key: items[0] if len(items) == 1 else items for key, items in request.args.lists()}
    return _validate(model, values, field_codes)


def _validate(
    model: type[M],
    payload: Any,
    field_codes: Mapping[str, ErrorCode] | None,
    *,
    from_json: bool = False,
) -> M:
    try:
        if from_json:
            # JSON's own types, strictly, as the API document states them:
            # `false` is not a number and "5" is not an integer. (A UUID or a
            # timestamp is a JSON string, so strict JSON mode still reads them.)
            return model.model_validate_json(payload, strict=True)
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [
            _field_error(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        # A specific code only when it tells the whole story: every problem is
        # in fields that map to that one code.
        codes = {(field_codes or {}).get(error["field"].split(".")[0]) for error in errors}
        code = codes.pop() if len(codes) == 1 else None
        raise _invalid(errors, code or ErrorCode.E_INVALID_REQUEST) from None


def _field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _invalid(
    errors: list[dict[str, str]], code: ErrorCode = ErrorCode.E_INVALID_REQUEST
) -> ApiError:
    noun = "problem" if len(errors) == 1 else "problems"
    return ApiError(code, f"The request has {len(errors)} {noun}; see errors.", errors=errors)
