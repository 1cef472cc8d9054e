"""``/admin/jobs`` in a browser: sign in, queues and the worker, a canary finishing, a retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from nexus.jobs.models import Job
from tests.browser.conftest import ADMIN, Requests
from tests.live import LiveServer

pytestmark = pytest.mark.browser


def _a_failed_canary(server: LiveServer) -> uuid.UUID:
    """A canary that failed earlier (its dependency was down, say); it succeeds when retried."""
    engine = create_engine(server.env["DATABASE_URL"])
    job_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.add(
            Job(
                id=job_id,
                name="jobs.canary",
                arguments={"seconds": 0, "enqueued_at": datetime.now(UTC).isoformat()},
                queue="default",
                status="failed",
                attempts=3,
                max_attempts=3,
                reason="error",
                error_type="ConnectionError",
                error_message="the upstream was down",
                ended_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    return job_id


def test_an_admin_watches_a_canary_finish_and_retries_a_failed_job(
    page: tuple[Page, Requests], server: LiveServer
) -> None:
    browser_page, requests = page
    failed = _a_failed_canary(server)
    browser_page.goto("/admin/jobs")

    form = browser_page.locator("#sign-in")
    form.locator("input[name=email]").fill(ADMIN[0])
    form.locator("input[name=password]").fill(ADMIN[1])
    form.locator("button[type=submit]").click()
    expect(browser_page.locator("#who")).to_have_text(f"Signed in as {ADMIN[0]}")

    expect(browser_page.locator("#queues tbody tr")).to_have_count(3)
    expect(browser_page.locator("#queues tr[data-queue=default]")).to_be_visible()
    expect(browser_page.locator("#workers tbody tr[data-worker]")).to_have_count(1)

    # A canary, from the page, through the worker, to finished.
    browser_page.locator("#canary").click()
    canary = browser_page.locator("#jobs tbody tr", has_text="jobs.canary").filter(
        has_not=browser_page.locator(f"[data-job='{failed}']")
    )
    expect(canary.locator("td.status-finished").first).to_be_visible(timeout=30_000)

    # The failed job shows its error and a Retry button; retried, it finishes.
    row = browser_page.locator(f"#jobs tr[data-job='{failed}']")
    expect(row).to_have_attribute("data-status", "failed")
    expect(row.locator("td.error-text")).to_have_text("ConnectionError: the upstream was down")
    row.locator("button[data-action=retry]").click()
    expect(row).to_have_attribute("data-status", "finished", timeout=30_000)
    expect(row).to_contain_text("4 / 6")  # a fourth attempt, with a fresh budget of three

    # Signing out ends the session; the page asks for a sign-in again.
    browser_page.locator("#sign-out").click()
    expect(form).to_be_visible()

    assert requests.off_machine == []
