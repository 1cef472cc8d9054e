"""`make lock-check`: stale locks fail, re-published files for a pin do not."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO_ROOT


@pytest.fixture(scope="module")
def lockcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockcheck", REPO_ROOT / ".ci" / "lockcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in (
        "requirements.in",
        "requirements.txt",
        "requirements-dev.in",
        "requirements-dev.txt",
    ):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def check(lockcheck: ModuleType, tree: Path) -> list[str]:
    locks = [tree / "requirements.txt", tree / "requirements-dev.txt"]
    return [problem for lock in locks for problem in lockcheck.check(lock)]


def test_the_committed_locks_match_their_inputs(lockcheck: ModuleType, tree: Path) -> None:
    assert check(lockcheck, tree) == []


def test_an_added_requirement_fails(lockcheck: ModuleType, tree: Path) -> None:
    with (tree / "requirements.in").open("a") as handle:
        handle.write("httpx>=0.27\n")
    problems = check(lockcheck, tree)
    assert any("requirements.in changed since" in problem for problem in problems)
    assert any("requires httpx, which" in problem for problem in problems)


def test_a_reconstrained_requirement_fails(lockcheck: ModuleType, tree: Path) -> None:
    source = tree / "requirements.in"
    source.write_text(source.read_text().replace("flask>=3.1,<4", "flask>=3.1.1,<4"))
    assert check(lockcheck, tree)


def test_a_removed_requirement_fails(lockcheck: ModuleType, tree: Path) -> None:
    source = tree / "requirements-dev.in"
    source.write_text(source.read_text().replace("ruff>=0.9\n", ""))
    assert any("requirements-dev.in changed" in problem for problem in check(lockcheck, tree))


def test_comments_order_and_new_hashes_do_not_fail(lockcheck: ModuleType, tree: Path) -> None:
    source = tree / "requirements.in"
    lines = source.read_text().splitlines()
    source.write_text("# a new comment\n" + "\n".join(reversed(lines)) + "\n\n")
    lock = tree / "requirements.txt"
    # The index published another wheel for a pinned version: only hashes change.
    lock.write_text(lock.read_text().replace("--hash=sha256:", "--hash=sha256:0", 1))
    assert check(lockcheck, tree) == []


def test_record_then_check_round_trips(lockcheck: ModuleType, tree: Path) -> None:
    with (tree / "requirements.in").open("a") as handle:
        handle.write("# only a comment\nblinker>=1.9\n")
    lock = tree / "requirements.txt"
    lockcheck.record(lock)
    lockcheck.record(lock)  # idempotent: one digest line
    assert lock.read_text().count(lockcheck.MARKER) == 1
    assert lockcheck.check(lock) == []  # blinker is pinned already (Flask needs it)
