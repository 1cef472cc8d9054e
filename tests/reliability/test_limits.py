"""Protections through gunicorn, behind a (simulated) proxy: a flood, a lockout, Redis gone.

This module's stack runs as production does: rate limits and the login
lockout on, one trusted proxy (``NEXUS_TRUSTED_PROXIES=1``), so each client
here sends ``X-Forwarded-For`` as a load balancer would write it. The API
limit is raised so the latency prober, one user polling 50 times a second,
is not itself limited.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.reliability.conftest import ADMIN, Stack, percentile, report, scale
from tests.reliability.test_load import Tally, probe_me
from tests.support import wait_for

STACK_ENV = {
    "NEXUS_RATE_LIMITS_ENABLED": "true",
    "NEXUS_RATE_LIMIT_API": "6000/minute",
    "NEXUS_LOGIN_LOCKOUT_FAILURES": "5",
    "NEXUS_TRUSTED_PROXIES": "1",
}
ATTACKER = {"X-Forwarded-For": "6.6.6.6"}
OWNER = {"X-Forwarded-For": "7.7.7.7"}


def _login(stack: Stack, email: str, password: str, headers: dict[str, str]) -> Any:
    return stack.request(
        "POST", "/api/v1/auth/login", {"email": email, "password": password}, headers=headers
    )


def test_a_login_flood_from_one_address_is_429_and_the_owner_still_signs_in(
    stack: Stack,
) -> None:
    # The owner has signed in from home before: home is a known address.
    assert _login(stack, *ADMIN, OWNER).status == 200
    me_token = stack.login(*ADMIN)["access_token"]
    idle = probe_me(stack, me_token, seconds=60, count=int(scale(100, 300)))
    flood = Tally()
    seconds = scale(6, 12)
    deadline = time.monotonic() + seconds

    def flooder(_: int) -> None:
        while time.monotonic() < deadline:
            flood.call(
                stack, "login", "POST", "/api/v1/auth/login",
                {"email": ADMIN[0], "password": "not-the-password-at-all"}, headers=ATTACKER,
            )  # fmt: skip

    with ThreadPoolExecutor(max_workers=41) as pool:
        probed = pool.submit(probe_me, stack, me_token, seconds=seconds)
        list(pool.map(flooder, range(40)))
        during = probed.result()
    logins = flood.statuses["login"]
    # Ten were let through to be tried (401, or 503 when another held the one
    # hash slot); every other one was refused before anything ran: 429.
    assert flood.errors == []
    assert set(logins) <= {401, 429, 503}, dict(logins)
    assert logins.get(401, 0) + logins.get(503, 0) == 10, dict(logins)
    assert logins[429] > 10 * 10, dict(logins)
    refused = _login(stack, ADMIN[0], "x", ATTACKER)
    assert refused.status == 429
    assert refused.json()["code"] == "E_RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Five wrong passwords in a row (another address, one at a time) lock the
    # account: the right password is refused from anywhere new, like a wrong one...
    for _ in range(5):
        assert (
            _login(stack, ADMIN[0], "still-wrong-password", {"X-Forwarded-For": "9.9.9.9"}).status
            == 401
        )
    assert _login(stack, *ADMIN, {"X-Forwarded-For": "8.8.8.8"}).status == 401
    # ...but not from the owner's known address.
    assert _login(stack, *ADMIN, OWNER).status == 200
    assert during["errors"] == []
    assert during["statuses"] == {"200": len(during["latency_ms"])}
    # What the audit log says: the attacker's address, through the proxy.
    admin = stack.login(*ADMIN)["access_token"]
    audit = stack.request(
        "GET", "/api/v1/admin/audit-logs?action=auth.lockout&limit=5", token=admin
    ).json()["data"]
    assert audit
    assert {entry["ip"] for entry in audit} <= {"6.6.6.6", "9.9.9.9"}
    failures = stack.request(
        "GET", "/api/v1/admin/audit-logs?action=auth.login&limit=200", token=admin
    ).json()["data"]
    assert "6.6.6.6" in {entry["ip"] for entry in failures}
    idle_p99 = percentile(idle["latency_ms"], 0.99)
    report(
        "login_flood_limited",
        {
            "flooders": 40,
            "seconds": seconds,
            "me_idle_p99_ms": round(idle_p99, 1),
            "me_flood_p50_ms": round(percentile(during["latency_ms"], 0.5), 1),
            "me_flood_p99_ms": round(percentile(during["latency_ms"], 0.99), 1),
            "me_p99_budget_ms": round(max(2 * idle_p99, 100.0), 1),
            **flood.summary(),
        },
    )


def test_with_redis_stopped_the_api_is_served_and_limits_are_open(stack: Stack) -> None:
    token = stack.login(*ADMIN)["access_token"]
    stack.kill("redis")
    try:
        statuses = [
            stack.request("GET", "/api/v1/auth/me", token=token, headers=OWNER).status
            for _ in range(5)
        ]
        login = _login(stack, *ADMIN, OWNER)
    finally:
        stack.start("redis")
    assert statuses == [200] * 5
    assert login.status == 200
    assert "ratelimit.storage_unavailable" in stack.log("web")
    wait_for(stack.healthy, timeout=60, interval=0.3)


def test_gunicorn_answers_carry_the_security_headers_and_no_server_version(
    stack: Stack,
) -> None:
    for path, status in (("/livez", 200), ("/nowhere", 404), ("/api/v1/auth/me", 401)):
        reply = stack.request("GET", path, headers=OWNER)
        assert reply.status == status
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
        assert not any(char.isdigit() for char in reply.headers.get("server", "")), reply.headers
