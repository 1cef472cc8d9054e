"""A domain plugs in through its Domain alone: an app built with a test-only domain added.

``tests/example_domain.py`` uses every hook: a blueprint, a job, a command,
an error code mapped from its own domain error, its own settings, a
subscriber to accounts' ``UserCreated``, and an ``init_app``. Nothing in
``src/`` knows it exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from nexus.accounts.models import User
from nexus.app import create_app
from nexus.config import ConfigError, Settings
from nexus.domains import DOMAINS
from nexus.infrastructure.database import get_database
from nexus.infrastructure.queue import get_queues
from nexus.jobs.models import Job
from nexus.jobs.worker import NexusSimpleWorker
from tests import example_domain
from tests.accounts_fixtures import PASSWORD
from tests.example_domain import Gadget
from tests.support import dispose


@pytest.fixture
def gadget_app(
    settings: Settings, fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    monkeypatch.setenv("NEXUS_TEST_GADGETS_MAX_PER_USER", "2")
    engine = create_engine(fresh_database)
    Gadget.__table__.create(engine)  # its migration, in a real fork
    engine.dispose()
    app = create_app(
        settings.model_copy(update={"database_url": fresh_database}),
        domains=(*DOMAINS, example_domain.domain),
    )
    yield app
    dispose(app)


def _gadgets(app: Flask) -> list[Gadget]:
    with app.app_context(), get_database().sessionmaker() as session:
        return list(session.scalars(select(Gadget).order_by(Gadget.name)))


def _register(app: Flask, email: str) -> tuple[int, Any]:
    response = app.test_client().post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    return response.status_code, response.get_json()


def _token(app: Flask, email: str) -> str:
    response = app.test_client().post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    token: str = response.get_json()["data"]["access_token"]
    return token


def test_a_new_user_gets_the_subscribers_work_in_the_same_transaction(
    gadget_app: Flask,
) -> None:
    status, body = _register(gadget_app, "ada@example.com")
    assert status == 201, body
    (gadget,) = _gadgets(gadget_app)
    assert gadget.name == "starter"
    assert str(gadget.owner_id) == body["data"]["id"]


def test_a_failing_subscriber_rolls_the_user_back(gadget_app: Flask) -> None:
    status, body = _register(gadget_app, "refuse-me@example.com")
    assert status == 500
    assert body["code"] == "E_INTERNAL"
    with gadget_app.app_context(), get_database().sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Gadget)) == 0
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_create_admin_publishes_user_created_too(gadget_app: Flask) -> None:
    runner = gadget_app.test_cli_runner()
    result = runner.invoke(
        args=["create-admin", "root@example.com"], env={"NEXUS_ADMIN_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output
    assert [gadget.name for gadget in _gadgets(gadget_app)] == ["starter"]


def test_routes_settings_errors_jobs_and_commands_come_from_the_domain(
    gadget_app: Flask,
) -> None:
    assert gadget_app.extensions["test_gadgets.ready"] is True  # its init_app ran
    _register(gadget_app, "ada@example.com")  # owns the starter gadget
    client = gadget_app.test_client()
    headers = {"Authorization": f"Bearer {_token(gadget_app, 'ada@example.com')}"}
    created = client.post(
        "/api/v1/test-gadgets", json={"name": "gear"}, headers={**headers, "X-Request-ID": "req-42"}
    )
    assert created.status_code == 201, created.get_json()
    job_id = created.get_json()["data"]["job_id"]

    # The short enqueue took the caller and request id from the request.
    with gadget_app.app_context(), get_database().sessionmaker() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        assert job.name == "tests.gadgets.recount"
        assert str(job.enqueued_by) == _owner_of(session, "starter")
        assert job.request_id == "req-42"

    # Its job runs in a worker of this app.
    with gadget_app.app_context():
        queues = get_queues()
        NexusSimpleWorker(queues.ordered, connection=queues.low.connection, app=gadget_app).work(
            burst=True
        )
    assert {w.name: w.recounted for w in _gadgets(gadget_app)} == {"gear": 1, "starter": 0}

    # NEXUS_TEST_GADGETS_MAX_PER_USER=2: the third is refused with the domain's own code.
    refused = client.post("/api/v1/test-gadgets", json={"name": "cog"}, headers=headers)
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "E_TEST_TOO_MANY_GADGETS"
    assert refused.get_json()["detail"] == "You have 2 gadgets; the limit is 2."
    catalogue = client.get("/api/v1/problems/E_TEST_TOO_MANY_GADGETS")
    assert catalogue.get_json()["data"]["status"] == 409

    # Its route is in the API document, from its declarations alone.
    operation = client.get("/openapi.json").get_json()["paths"]["/api/v1/test-gadgets"]["post"]
    assert operation["tags"] == ["test-gadgets"]
    assert operation["summary"] == "Make a gadget; a job recounts the owner's gadgets."
    assert operation["security"] == [{"bearer": []}]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GadgetIn"
    }
    assert sorted(operation["responses"]) == [
        "201", "400", "401", "409", "413", "415", "429", "503",
    ]  # fmt: skip
    conflict = operation["responses"]["409"]["content"]["application/problem+json"]
    assert conflict["schema"]["allOf"][1]["properties"]["code"] == {
        "enum": ["E_TEST_TOO_MANY_GADGETS"]
    }

    # Its command.
    result = gadget_app.test_cli_runner().invoke(args=["test-gadgets-count"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "2"


def _owner_of(session: Session, name: str) -> str:
    return str(session.scalar(select(Gadget.owner_id).where(Gadget.name == name)))


def test_an_app_without_the_domain_has_none_of_it(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/api/v1/test-gadgets", json={"name": "gear"}).status_code == 404
    assert client.get("/api/v1/problems/E_TEST_TOO_MANY_GADGETS").status_code == 404
    assert "test-gadgets-count" not in app.cli.commands
    assert "/api/v1/test-gadgets" not in client.get("/openapi.json").get_json()["paths"]


def test_a_domains_bad_setting_fails_start_up_with_one_message(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TEST_GADGETS_MAX_PER_USER", "many")
    with pytest.raises(ConfigError, match="NEXUS_TEST_GADGETS_MAX_PER_USER: Input should be"):
        create_app(settings, domains=(*DOMAINS, example_domain.domain))
