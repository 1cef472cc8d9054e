"""Uploads while the worker is killed: every accepted upload is read, each fragment once.

Clients upload 100 distinct articles at once through gunicorn while the RQ
worker is killed with ``kill -9`` (it and the ingestion it is running) and
started again, twice. Every upload must be accepted (202), and every media
must end ``ready_for_reading`` with exactly its paragraphs, in order, each
once: the durable job comes back and the ingestion job, safe to run twice,
finishes what the killed one started.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.reliability.conftest import ADMIN, Stack, report
from tests.support import wait_for

UPLOADS = 100
CLIENTS = 10
PARAGRAPHS = 40


def _article(number: int) -> tuple[str, list[str]]:
    paragraphs = [
        f"Article {number} paragraph {index}: " + " ".join(f"word{n}" for n in range(300))
        for index in range(PARAGRAPHS)
    ]
    return "".join(f"<p>{text}</p>" for text in paragraphs), paragraphs


def _fragments(stack: Stack, token: str, media_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        reply = stack.request(
            "GET", f"/api/v1/media/{media_id}/fragments?limit=200{cursor}", token=token
        )
        assert reply.status == 200, reply.body
        body = reply.json()
        found += body["data"]
        if body["meta"]["next_cursor"] is None:
            return found
        cursor = f"&cursor={body['meta']['next_cursor']}"


def test_uploads_survive_the_worker_killed_twice_and_each_fragment_is_written_once(
    stack: Stack,
) -> None:
    token = stack.login(*ADMIN)["access_token"]
    libraries = stack.request("GET", "/api/v1/libraries", token=token).json()["data"]
    library = next(lib["id"] for lib in libraries if lib["is_default"])
    accepted: dict[str, list[str]] = {}
    jobs: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def upload(number: int) -> None:
        html, paragraphs = _article(number)
        reply = stack.request(
            "POST",
            f"/api/v1/libraries/{library}/media",
            {"title": f"Article {number}", "html": html},
            token=token,
            timeout=60,
        )
        with lock:
            statuses.append(reply.status)
            if reply.status == 202:
                accepted[reply.json()["data"]["media"]["id"]] = paragraphs
                jobs.append(reply.json()["data"]["job_id"])

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(upload, number) for number in range(UPLOADS)]
        kills = 0
        for threshold in (UPLOADS // 4, UPLOADS // 2):
            wait_for(lambda t=threshold: len(statuses) >= t, timeout=120, interval=0.05)
            stack.kill("worker")  # and its work horse, mid-ingestion
            kills += 1
            time.sleep(1)
            stack.start("worker")
        for future in futures:
            future.result()
    assert statuses == [202] * UPLOADS, sorted(set(statuses))

    def media(media_id: str) -> dict[str, Any]:
        reply = stack.request("GET", f"/api/v1/media/{media_id}", token=token)
        assert reply.status == 200, reply.body
        data: dict[str, Any] = reply.json()["data"]
        return data

    waiting = set(accepted)

    def all_read() -> bool:
        for media_id in list(waiting):
            status = media(media_id)["processing_status"]
            assert status != "failed", media(media_id)
            if status == "ready_for_reading":
                waiting.discard(media_id)
        return not waiting

    wait_for(all_read, timeout=300, interval=1)
    elapsed = time.monotonic() - began
    for media_id, paragraphs in accepted.items():
        fragments = _fragments(stack, token, media_id)
        assert [f["idx"] for f in fragments] == list(range(PARAGRAPHS)), media_id
        assert [f["canonical_text"] for f in fragments] == paragraphs, media_id
    attempts = [
        stack.request("GET", f"/api/v1/jobs/{job}", token=token).json()["data"]["attempts"]
        for job in jobs
    ]
    report(
        "media_ingest_worker_killed",
        {
            "uploads": UPLOADS,
            "clients": CLIENTS,
            "worker_kills": kills,
            "all_ready_seconds": round(elapsed, 1),
            "fragments_each": PARAGRAPHS,
            # Ingestions the kills interrupted and a later attempt finished.
            "jobs_run_more_than_once": sum(1 for n in attempts if n > 1),
        },
    )
