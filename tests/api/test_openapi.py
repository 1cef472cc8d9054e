"""The OpenAPI document: valid, complete, and true of what each route answers when called."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Blueprint, Flask, Response
from flask.testing import FlaskClient
from openapi_spec_validator import validate as validate_openapi
from werkzeug.test import TestResponse

import nexus
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.health import Liveness
from nexus.api.openapi import UndocumentedRouteError
from nexus.app import create_app
from nexus.config import Settings
from nexus.domain import Domain
from nexus.domains import DOMAINS
from tests.accounts_fixtures import PASSWORD, Tokens
from tests.support import checkout, dispose

# Static files, the document itself and the HTML pages; nothing else.
UNDOCUMENTED = {
    "static", "openapi.document", "docs.show", "jobs_pages.page", "jobs_pages.static",
    "metrics.show",
}  # fmt: skip


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    # From the source, not the package metadata: the image runs uninstalled source.
    assert document["info"]["version"] == nexus.__version__ == version("nexus")
    validate_openapi(document)  # raises on any violation
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {tag["name"] for tag in document["tags"]} == {
        "accounts", "audit", "jobs", "libraries", "ops", "problems",
    }  # fmt: skip


def test_every_route_in_the_url_map_is_documented(app: Flask, document: dict[str, Any]) -> None:
    assert app.extensions["nexus.undocumented_endpoints"] == UNDOCUMENTED
    seen = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"].get(path, {}), f"{method} {path}"
            seen.add((path, method.lower()))
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == seen  # and nothing documented that the app does not serve
    assert "/openapi.json" not in document["paths"]
    assert not any(path.startswith("/docs") for path in document["paths"])


def test_statuses_are_explicit_and_problems_name_their_codes(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status), f"{method} {path}: {status}"
                problem = response.get("content", {}).get("application/problem+json")
                if problem is not None:
                    codes = problem["schema"]["allOf"][1]["properties"]["code"]["enum"]
                    assert codes
                    assert set(problem["examples"]) == set(codes)
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert login["responses"]["401"]["content"]["application/problem+json"]["schema"]["allOf"][1][
        "properties"
    ]["code"] == {"enum": ["E_UNAUTHENTICATED"]}
    users = document["paths"]["/api/v1/admin/users"]["get"]
    assert users["security"] == [{"bearer": []}]
    assert "403" in users["responses"]
    assert [p["name"] for p in users["parameters"]] == [
        "limit", "cursor", "role", "is_active", "email_prefix",
    ]  # fmt: skip
    assert users["parameters"][2]["schema"] == {"type": "string", "enum": ["admin", "member"]}


class Conformance:
    """Calls a route and checks the answer against its operation in the document."""

    def __init__(self, client: FlaskClient, document: dict[str, Any]) -> None:
        self.client = client
        self.document = document
        self.calls = 0

    def check(
        self,
        method: str,
        path: str,
        template: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        response = self.client.open(path, method=method.upper(), headers=headers or {}, **kwargs)
        operation = self.document["paths"][template or path][method]
        where = f"{method.upper()} {path} -> {response.status_code}"
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{where} is not documented: {response.get_data()!r}"
        self.calls += 1
        if "content" not in documented:
            assert response.get_data() == b"", where
            return response
        assert response.mimetype in documented["content"], f"{where}: {response.mimetype}"
        schema = documented["content"][response.mimetype]["schema"]
        jsonschema.Draft202012Validator(
            {**schema, "components": self.document["components"]},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        ).validate(response.get_json())
        return response


def test_each_route_answers_only_what_the_document_says(
    client: FlaskClient,
    document: dict[str, Any],
    admin: Tokens,
    member: Tokens,
) -> None:
    """Every operation, called the ways a client gets it wrong and right."""
    conformance = Conformance(client, document)
    nobody = str(uuid.uuid4())
    identities: dict[str, dict[str, str]] = {
        "anonymous": {},
        "member": member.headers,
        "admin": admin.headers,
    }
    for template, operations in document["paths"].items():
        path = template.replace("{job_id}", nobody).replace("{user_id}", nobody)
        path = path.replace("{library_id}", nobody)
        path = path.replace("{name}", "E_NOT_FOUND")
        for method, operation in operations.items():
            # Signing out here would leave the calls after it nobody to be.
            signs_out = template == "/api/v1/auth/logout"
            for who, headers in identities.items():
                if signs_out and who != "anonymous":
                    continue
                conformance.check(method, path, template, headers=headers)
                if "requestBody" in operation:
                    conformance.check(method, path, template, headers=headers, data="{oops")
                    conformance.check(
                        method, path, template, headers=headers, json={"unexpected": True}
                    )
                    conformance.check(
                        method, path, template, headers={**headers, "Content-Type": "text/plain"},
                        data="x",
                    )  # fmt: skip
            if "{" in template:
                bad = re.sub(r"\{\w+\}", "not-an-id", template)
                conformance.check(method, bad, template, headers=admin.headers)
            if any(p["in"] == "query" for p in operation["parameters"]):
                conformance.check(method, f"{path}?limit=0", template, headers=admin.headers)
                conformance.check(method, f"{path}?surprise=1", template, headers=admin.headers)

    # The successes, each in its documented shape.
    conformance.check("get", "/livez")
    conformance.check("get", "/healthz")
    conformance.check("get", "/api/v1/problems")
    conformance.check("get", "/api/v1/problems/E_CONFLICT", "/api/v1/problems/{name}")
    conformance.check("get", "/api/v1/auth/me", headers=member.headers)
    registered = conformance.check(
        "post", "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert registered.status_code == 201
    taken = conformance.check(
        "post", "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert taken.get_json()["code"] == "E_CONFLICT"
    conformance.check("get", "/api/v1/admin/users", headers=admin.headers)
    conformance.check("get", "/api/v1/admin/audit-logs", headers=admin.headers)
    conformance.check("get", "/api/v1/admin/jobs", headers=admin.headers)
    canary = conformance.check(
        "post", "/api/v1/admin/jobs/canary", headers=admin.headers, json={"seconds": 0}
    )
    job = canary.get_json()["data"]["id"]
    conformance.check("get", f"/api/v1/jobs/{job}", "/api/v1/jobs/{job_id}", headers=admin.headers)
    conformance.check(
        "post", f"/api/v1/admin/jobs/{job}/cancel", "/api/v1/admin/jobs/{job_id}/cancel",
        headers=admin.headers,
    )  # fmt: skip
    conformance.check(
        "post", f"/api/v1/admin/jobs/{job}/cancel", "/api/v1/admin/jobs/{job_id}/cancel",
        headers=admin.headers,
    )  # fmt: skip  # a second cancel: 409
    conformance.check("post", "/api/v1/admin/invites", headers=admin.headers, json={})
    conformance.check("post", "/api/v1/auth/refresh", headers=member.refresh_headers)
    conformance.check("post", "/api/v1/auth/logout", headers=admin.headers)
    assert conformance.calls > 150


def test_a_route_that_does_not_say_what_it_answers_stops_the_start(settings: Settings) -> None:
    bp = Blueprint("mute", __name__)

    @bp.get("/mute")
    def mute() -> Response:
        return data({})

    extra = Domain(name="mute", blueprints=((bp, ""),))
    with pytest.raises(
        UndocumentedRouteError, match=r"/api/v1/mute \(mute.mute\) has no @responds"
    ):
        create_app(settings, domains=(*DOMAINS, extra))


@pytest.fixture
def docs_client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_docs_page_is_served_from_the_packages_own_files(docs_client: FlaskClient) -> None:
    page = docs_client.get("/docs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/openapi.json" in html
    # Nothing is fetched from another host: it must work with no internet.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        with docs_client.get(asset) as response:
            assert response.status_code == 200, asset
            assert response.content_length, asset
    assert '"validatorUrl": null' in html  # no document sent to validator.swagger.io


def test_make_openapi_writes_the_document_in_a_fresh_clone(tmp_path: Path) -> None:
    """For client generators; it needs no server and no configuration."""
    clone = checkout(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        ["make", "openapi"], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    written = json.loads((clone / "data" / "openapi.json").read_text())
    validate_openapi(written)
    assert "/api/v1/auth/login" in written["paths"]


def test_create_app_builds_the_same_document_each_time(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    try:
        assert first.extensions["nexus.openapi"] == second.extensions["nexus.openapi"]
    finally:
        dispose(first)
        dispose(second)


def test_links_lead_from_an_answer_to_the_operations_that_take_it(
    document: dict[str, Any], settings: Settings
) -> None:
    canary = document["paths"]["/api/v1/admin/jobs/canary"]["post"]["responses"]["202"]
    assert canary["links"]["GetJob"] == {
        "operationId": "jobs.get_job",
        "parameters": {"job_id": "$response.body#/data/id"},
    }
    operation_ids = {
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in operation["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in operation_ids

    bp = Blueprint("linked", __name__)

    @bp.get("/linked")
    @responds(200, Liveness, envelope="bare", links={"Gone": ("nowhere.at_all", {})})
    def linked() -> Response:
        return data({})

    extra = Domain(name="linked", blueprints=((bp, ""),))
    with pytest.raises(UndocumentedRouteError, match="link Gone names no operation"):
        create_app(settings, domains=(*DOMAINS, extra))
