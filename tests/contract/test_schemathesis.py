"""The running app against its own OpenAPI document: schemathesis, as anonymous, member and admin.

Exactly the checks the API contract promises: no 5xx, only documented
statuses and content types, bodies that match their schemas, and data that
breaks the schema refused. Bounded by ``NEXUS_CONTRACT_EXAMPLES`` per
operation (CI's default keeps the step well under three minutes; raise it,
and change ``NEXUS_CONTRACT_SEED``, for a longer hunt). A failure prints
schemathesis' report with the request that reproduces it, and the server's
last log lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.conftest import ADMIN, MEMBER, PASSWORD
from tests.live import LiveServer
from tests.support import REPO_ROOT

pytestmark = pytest.mark.contract
BIN = Path(sys.executable).parent
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
EXAMPLES = os.environ.get("NEXUS_CONTRACT_EXAMPLES", "25")
# Fixed, so that CI is repeatable; set another to look elsewhere.
SEED = os.environ.get("NEXUS_CONTRACT_SEED", "20261123")


@pytest.mark.parametrize("who", ["anonymous", "member", "admin"])
def test_the_running_app_keeps_its_contract(server: LiveServer, who: str) -> None:
    env = {
        **server.env,  # the hook's create-admin reaches the server's database
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        "NEXUS_CONTRACT_BASE_URL": server.base_url,
        "NEXUS_CONTRACT_PASSWORD": PASSWORD,
        # The fuzzer talks to loopback only, never through a proxy.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.pop("NEXUS_CONTRACT_EMAIL", None)
    if who != "anonymous":
        env["NEXUS_CONTRACT_EMAIL"] = ADMIN if who == "admin" else MEMBER
        env["NEXUS_CONTRACT_RESTORE_ADMIN"] = "1" if who == "admin" else "0"
    run = subprocess.run(
        [
            BIN / "schemathesis", "run", f"{server.base_url}/openapi.json",
            "--checks", ",".join(CHECKS),
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", EXAMPLES,
            # One worker: Hypothesis parses lambdas' source with ast.parse, which
            # is not thread-safe on CPython 3.11 before 3.11.8 (Debian 12 has
            # 3.11.2): two threads fail with "AST constructor recursion depth
            # mismatch".
            "--workers", "1",
            "--request-timeout", "15",
            "--seed", SEED,
        ],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    sys.stdout.write(run.stdout[-3000:])  # the summary, under -s
    server_log = server.log.read_text(errors="replace").splitlines()
    assert run.returncode == 0, "\n".join(
        [run.stdout[-20000:], run.stderr[-3000:], "server log (last lines):", *server_log[-40:]]
    )
