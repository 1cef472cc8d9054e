"""Schemathesis hooks for the contract run: sign in as the run's user, and keep a fresh token.

Loaded by ``schemathesis run`` through ``SCHEMATHESIS_HOOKS``. With
``NEXUS_CONTRACT_EMAIL`` set, every generated request carries a bearer token
for that account, fetched by signing in — again every two seconds, because
the fuzzer's own calls to ``/auth/logout`` and ``/auth/refresh`` revoke the
token it holds. Without it the run is anonymous.

An admin run reuses the ids the API hands out, so it demotes, deactivates or
deletes its own admin sooner or later. When signing in is then refused, the
hook does what an operator would: ``flask --app nexus create-admin``, which
promotes and re-activates the account (or makes it again), and signs in anew.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any

import schemathesis

from tests.live import sign_in

BASE_URL = os.environ.get("NEXUS_CONTRACT_BASE_URL", "")
EMAIL = os.environ.get("NEXUS_CONTRACT_EMAIL")
PASSWORD = os.environ.get("NEXUS_CONTRACT_PASSWORD", "")
RESTORE_ADMIN = os.environ.get("NEXUS_CONTRACT_RESTORE_ADMIN") == "1"
FLASK = Path(sys.executable).parent / "flask"


class SignIn:
    """A bearer token for ``EMAIL``, from ``POST /api/v1/auth/login``."""

    def get(self, _case: Any, _ctx: Any) -> str:
        try:
            return sign_in(BASE_URL, str(EMAIL), PASSWORD)
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or not RESTORE_ADMIN:
                raise
        restored = subprocess.run(
            [FLASK, "--app", "nexus", "create-admin", str(EMAIL)],
            env={**os.environ, "NEXUS_ADMIN_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            check=False,
        )
        if restored.returncode != 0:
            raise RuntimeError(f"could not restore the run's admin: {restored.stderr}")
        return sign_in(BASE_URL, str(EMAIL), PASSWORD)

    def set(self, case: Any, data: str, _ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


if EMAIL:
    schemathesis.auth(refresh_interval=2)(SignIn)
