"""Helpers of the libraries tests: uploads through the API, the real worker, paging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from nexus.infrastructure.queue import get_queues
from nexus.jobs.worker import NexusSimpleWorker
from tests.accounts_fixtures import Tokens

API = "/api/v1"


def run_jobs(app: Flask, redis: Redis) -> None:
    """Every queued job, run by a real worker of this app, until the queues are empty."""
    with app.app_context():
        queues = get_queues().ordered
    NexusSimpleWorker(queues, connection=redis, app=app).work(burst=True)


def library_of(client: FlaskClient, who: Tokens, name: str | None = None) -> str:
    """``who``'s default library, or a new one called ``name``."""
    if name is None:
        libraries = client.get(f"{API}/libraries", headers=who.headers).get_json()["data"]
        return str(next(lib["id"] for lib in libraries if lib["is_default"]))
    made = client.post(f"{API}/libraries", json={"name": name}, headers=who.headers)
    return str(made.get_json()["data"]["id"])


def post_article(client: FlaskClient, who: Tokens, library: str, **body: Any) -> Any:
    return client.post(f"{API}/libraries/{library}/media", json=body, headers=who.headers)


def post_file(
    client: FlaskClient,
    who: Tokens,
    library: str,
    name: str,
    content: bytes,
    **fields: str,
) -> Any:
    """A multipart upload, encoded here as a browser would.

    (The test client would spool a body over 500 KB to a temporary file it
    never closes.)
    """
    boundary = "nexus-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return client.post(
        f"{API}/libraries/{library}/media",
        data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
        headers=who.headers,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def pages(client: FlaskClient, who: Tokens, url: str) -> Iterator[list[dict[str, Any]]]:
    """Each page of a list endpoint, following ``meta.next_cursor`` to the end."""
    joiner = "&" if "?" in url else "?"
    cursor = ""
    while True:
        response = client.get(f"{url}{cursor}", headers=who.headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        yield body["data"]
        if body["meta"]["next_cursor"] is None:
            return
        cursor = f"{joiner}cursor={body['meta']['next_cursor']}"


def texts(client: FlaskClient, who: Tokens, media_id: str) -> list[str]:
    """The media's fragments' text, every page of them, in order."""
    url = f"{API}/media/{media_id}/fragments?limit=2"
    return [fragment["canonical_text"] for page in pages(client, who, url) for fragment in page]
