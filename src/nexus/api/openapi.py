"""The OpenAPI 3.1 document, built from the routes' contracts, and the pages that show it.

Owns ``build_document(app)`` — a walk over Flask's URL map that turns each
route's :class:`~nexus.api.contract.Contract` and its pydantic models into
paths, parameters, bodies, responses (every status explicit, problems with
``code`` as an enum of that route's codes), the bearer scheme and a tag per
domain — and ``GET /openapi.json`` (built once, when the app is made) and
``GET /docs`` (Swagger UI from the pinned ``flask-swagger-ui`` package's own
files: it works with no internet). Only ``/static``, this document and the
HTML pages stay out of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask_swagger_ui import get_swaggerui_blueprint
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from nexus.api.contract import Contract, Success, contract_of
from nexus.api.errors import ErrorCode
from nexus.version import __version__

DOCUMENT_KEY = "nexus.openapi"
UNDOCUMENTED_KEY = "nexus.undocumented_endpoints"
REF = "#/components/schemas/{model}"
bp = Blueprint("openapi", __name__)

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status", "detail", "instance", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "The code's entry in /api/v1/problems."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "code": {"type": "string", "description": "The stable code clients branch on."},
        "request_id": {"type": "string", "description": "Quote it when reporting a problem."},
        "errors": {
            "type": "array",
            "description": "What is wrong with each field.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
PAGE_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["next_cursor", "limit"],
    "properties": {
        "next_cursor": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "Pass back as ?cursor= for the next page; null on the last.",
        },
        "limit": {"type": "integer"},
    },
    "additionalProperties": False,
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`."}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
}
_CONVERTERS = {
    "UUIDConverter": {"type": "string", "format": "uuid"},
    "IntegerConverter": {"type": "integer", "minimum": 0},
}
_PLACEHOLDER = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


class UndocumentedRouteError(RuntimeError):
    """A route in the URL map says nothing about what it answers (no ``@responds``)."""


def init_app(app: Flask, domain_tags: dict[str, str]) -> None:
    """Mount ``/openapi.json`` and ``/docs``; build the document now, so a gap fails the start."""
    app.register_blueprint(bp)
    docs = get_swaggerui_blueprint(
        "/docs",
        "/openapi.json",
        config={
            "app_name": "Nexus API",
            # Swagger UI would send the document to validator.swagger.io.
            "validatorUrl": None,
            "persistAuthorization": True,
            "displayRequestDuration": True,
        },
        blueprint_name="docs",
    )
    app.register_blueprint(docs)
    hide(app, "static", "openapi.document", "docs.show")
    app.extensions[DOCUMENT_KEY] = build_document(app, domain_tags)


def hide(app: Flask, *endpoints: str) -> None:
    """Leave these endpoints (HTML pages, static files) out of the document."""
    app.extensions.setdefault(UNDOCUMENTED_KEY, set()).update(endpoints)


@bp.get("/openapi.json")
def document() -> Response:
    return jsonify(current_app.extensions[DOCUMENT_KEY])


def build_document(app: Flask, domain_tags: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route in ``app``'s URL map."""
    hidden: set[str] = app.extensions.get(UNDOCUMENTED_KEY, set())
    routes: list[tuple[Rule, Contract]] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint in hidden:
            continue
        contract = contract_of(app.view_functions[rule.endpoint])
        if contract is None or not contract.successes:
            raise UndocumentedRouteError(
                f"{rule.rule} ({rule.endpoint}) has no @responds: say what it answers"
            )
        routes.append((rule, contract))
    refs, schemas = _schemas(routes)
    _check_links(routes)
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    for rule, contract in routes:
        tag = _tag(rule.endpoint, domain_tags)
        tags.setdefault(tag, domain_tags.get(rule.endpoint.split(".")[0], tag))
        view = app.view_functions[rule.endpoint]
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            operation_id = rule.endpoint if len(methods) == 1 else f"{rule.endpoint}.{method}"
            paths.setdefault(_path(rule), {})[method.lower()] = _operation(
                rule, contract, refs, tag=tag, operation_id=operation_id, doc=view.__doc__
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Nexus API",
            "version": __version__,
            "description": (
                "Every error is an RFC 9457 problem document (`application/problem+json`) "
                "with a stable `code`; the codes are listed at `/api/v1/problems`. "
                "Authorize with the `access_token` from `POST /api/v1/auth/login`."
            ),
        },
        "tags": [{"name": name} for name in sorted(tags)],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA, "PageMeta": PAGE_META_SCHEMA, **schemas},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _check_links(routes: list[tuple[Rule, Contract]]) -> None:
    known = {rule.endpoint for rule, _contract in routes}
    for rule, contract in routes:
        for success in contract.successes.values():
            for name, (operation_id, _parameters) in success.links.items():
                if operation_id not in known:
                    raise UndocumentedRouteError(
                        f"{rule.endpoint}'s link {name} names no operation: {operation_id}"
                    )


def _schemas(
    routes: Iterable[tuple[Rule, Contract]],
) -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]], dict[str, Any]]:
    """One JSON Schema per model, as pydantic makes it, and the ``$ref`` to each."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for _rule, contract in routes:
        if contract.body is not None:
            wanted[(contract.body, "validation")] = None
        if contract.form is not None:
            wanted[(contract.form, "validation")] = None
        if contract.query is not None:
            wanted[(contract.query, "validation")] = None
        for success in contract.successes.values():
            if success.model is not None:
                wanted[(success.model, "serialization")] = None
    made, top = models_json_schema(list(wanted), ref_template=REF)
    refs = {(model, mode): made[(model, mode)] for model, mode in wanted}
    return refs, dict(top.get("$defs", {}))


def _tag(endpoint: str, domain_tags: dict[str, str]) -> str:
    blueprint = endpoint.split(".", maxsplit=1)[0]
    return {"health": "ops", "problems": "problems"}.get(blueprint) or domain_tags.get(
        blueprint, blueprint
    )


def _path(rule: Rule) -> str:
    return _PLACEHOLDER.sub(r"{\1}", rule.rule)


def _operation(
    rule: Rule,
    contract: Contract,
    refs: dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
    *,
    tag: str,
    operation_id: str,
    doc: str | None,
) -> dict[str, Any]:
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    operation: dict[str, Any] = {
        "tags": [tag],
        "operationId": operation_id,
        "summary": contract.summary or (lines[0] if lines and lines[0] else operation_id),
        "parameters": [*_path_parameters(rule), *_query_parameters(contract)],
        "responses": _responses(rule, contract, refs),
        "security": [{"bearer": []}] if contract.secured else [],
    }
    if len(lines) > 1:
        operation["description"] = " ".join(line for line in lines[1:] if line)
    content: dict[str, Any] = {}
    if contract.body is not None:
        content["application/json"] = {"schema": refs[(contract.body, "validation")]}
    if contract.form is not None:
        content["multipart/form-data"] = {"schema": refs[(contract.form, "validation")]}
    if content:
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    parameters = []
    for name, converter in rule._converters.items():
        schema = _CONVERTERS.get(type(converter).__name__, {"type": "string", "minLength": 1})
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def _query_parameters(contract: Contract) -> list[dict[str, Any]]:
    if contract.query is None:
        return []
    schema = contract.query.model_json_schema(ref_template=REF, mode="validation")
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _query_value(field),
            **({"description": field["description"]} if "description" in field else {}),
        }
        for name, field in schema.get("properties", {}).items()
    ]


def _query_value(field: dict[str, Any]) -> dict[str, Any]:
    """A query field's schema, without the ``null`` of an optional one.

    A query string cannot say null: an optional parameter is one left out.
    """
    schema = {key: value for key, value in field.items() if key not in ("title", "description")}
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if schema.get("default", ...) is None:
        del schema["default"]
    if len(options) == 1:
        return {**schema, **options[0]}
    if options:
        schema["anyOf"] = options
    return schema


def _responses(
    rule: Rule,
    contract: Contract,
    refs: dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]],
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, success in sorted(contract.successes.items()):
        responses[str(status)] = _success(success, refs)
    codes = list(contract.codes)
    if rule.arguments:  # a malformed or unknown id: no such resource
        codes.append(ErrorCode.E_NOT_FOUND)
    if contract.outage:
        codes.append(ErrorCode.E_UNAVAILABLE)
    if rule.rule.startswith("/api/"):  # every API request counts against its client's limit
        codes.append(ErrorCode.E_RATE_LIMITED)
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        named = by_status.setdefault(code.status, [])
        if code not in named:
            named.append(code)
    for status, named in sorted(by_status.items()):
        if str(status) in responses:  # a success status (e.g. /healthz's 503) keeps its body
            continue
        responses[str(status)] = _problem(status, named)
    return dict(sorted(responses.items()))


def _success(
    success: Success, refs: dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]
) -> dict[str, Any]:
    links = {
        name: {"operationId": operation_id, "parameters": dict(parameters)}
        for name, (operation_id, parameters) in success.links.items()
    }
    if success.model is None:
        return {"description": success.description, **({"links": links} if links else {})}
    ref = refs[(success.model, "serialization")]
    schema: dict[str, Any]
    if success.envelope == "bare":
        schema = ref
    elif success.envelope == "list":
        schema = {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"type": "array", "items": ref}},
            "additionalProperties": False,
        }
    elif success.envelope == "page":
        schema = {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": {"type": "array", "items": ref},
                "meta": {"$ref": REF.format(model="PageMeta")},
            },
            "additionalProperties": False,
        }
    else:
        schema = {
            "type": "object",
            "required": ["data"],
            "properties": {"data": ref},
            "additionalProperties": False,
        }
    return {
        "description": success.description,
        "content": {"application/json": {"schema": schema}},
        **({"links": links} if links else {}),
    }


def _problem(status: int, codes: list[ErrorCode]) -> dict[str, Any]:
    schema = {
        "allOf": [
            {"$ref": REF.format(model="Problem")},
            {
                "type": "object",
                "properties": {
                    "code": {"enum": [code.name for code in codes]},
                    "status": {"const": status},
                },
            },
        ]
    }
    examples = {
        code.name: {
            "summary": code.title,
            "value": {
                "type": code.type_uri,
                "title": code.title,
                "status": status,
                "detail": code.description,
                "instance": "/api/v1/...",
                "code": code.name,
                "request_id": "5f0c6a7e-2b1d-4f5e-9c1a-0d3b8e6f4a21",
            },
        }
        for code in codes
    }
    response: dict[str, Any] = {
        "description": "; ".join(f"`{code.name}`: {code.description}" for code in codes),
        "content": {"application/problem+json": {"schema": schema, "examples": examples}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response
