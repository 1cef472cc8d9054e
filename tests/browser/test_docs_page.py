"""``/docs`` in a real browser: every tag, Authorize with a token, and a call that answers 200."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Requests, access_token
from tests.live import LiveServer

pytestmark = pytest.mark.browser

TAGS = ("accounts", "audit", "jobs", "libraries", "ops", "problems")


def test_docs_lists_every_tag_authorizes_and_runs_a_request(
    page: tuple[Page, Requests], server: LiveServer
) -> None:
    browser_page, requests = page
    browser_page.goto("/docs/")
    expect(browser_page.locator(".swagger-ui .info .title")).to_contain_text("Nexus API")
    for tag in TAGS:
        expect(browser_page.locator(f"#operations-tag-{tag}")).to_be_visible()

    # Authorize with an access token, as the page tells a user to.
    browser_page.locator(".auth-wrapper .authorize").click()
    browser_page.locator(".modal-ux input[type=text]").fill(access_token(server))
    browser_page.locator(".modal-ux .auth-btn-wrapper .authorize").click()
    browser_page.locator(".modal-ux .btn-done").click()

    # GET /api/v1/auth/me: try it out, execute, see 200 and the admin.
    operation = browser_page.locator(".opblock-get", has_text="/api/v1/auth/me")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    live = operation.locator(".live-responses-table tr.response .response-col_status").first
    expect(live).to_have_text("200")
    expect(operation.locator(".live-responses-table .microlight").first).to_contain_text(
        "browser-admin@example.com"
    )

    assert requests.off_machine == []
    assert any(url.endswith("/openapi.json") for url in requests.seen)


def test_a_request_to_another_host_is_caught() -> None:
    """The offline checks above would catch a CDN: they count any other host."""
    requests = Requests("http://127.0.0.1:5000")
    requests.seen += [
        "http://127.0.0.1:5000/docs/swagger-ui-bundle.js",
        "data:image/png;base64,AAAA",
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css",
        "http://127.0.0.1:5001/elsewhere",
    ]
    assert requests.off_machine == [
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css",
        "http://127.0.0.1:5001/elsewhere",
    ]
