"""The Makefile's own guards, run as a user runs them: `make <target>` in a fresh checkout."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support import checkout


def test_make_venv_names_the_supported_pythons_when_given_another(tmp_path: Path) -> None:
    clone = checkout(tmp_path / "clone", venv=False)
    # An interpreter that reports 3.10, as Debian 11's would.
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\n[ "$1" = -V ] && { echo "Python 3.10.13"; exit 0; }\nexit 1\n')
    old.chmod(0o755)
    result = subprocess.run(
        ["make", "venv", f"PYTHON={old}"],
        cwd=clone,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"Nexus needs CPython 3.11.2 to 3.13; {old} is Python 3.10.13" in result.stderr
    assert not (clone / ".venv").exists()  # nothing half-made


def test_make_create_admin_passes_the_address_without_a_shell(
    tmp_path: Path, subprocess_env: Callable[..., dict[str, str]], fresh_database: str
) -> None:
    clone = checkout(tmp_path / "clone")
    env = {k: v for k, v in subprocess_env(fresh_database).items() if not k.startswith("MAKE")}
    env["NEXUS_ADMIN_PASSWORD"] = "violet-tangerine-kettle-42"
    hostile = 'a"; echo INJECTED; echo "'
    result = subprocess.run(
        ["make", "create-admin", f"EMAIL={hostile}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0  # not an address
    assert "INJECTED\n" not in output.replace("echo INJECTED", "")
    assert "Invalid value for EMAIL: An email address must have an @-sign." in output

    good = subprocess.run(
        ["make", "create-admin", "EMAIL=root@example.com"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "created root@example.com" in good.stdout
