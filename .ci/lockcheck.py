"""Record and check that each requirements lock matches the .in file it was compiled from.

`make lock` runs ``record`` after pip-compile: it writes a digest of the
normalised inputs (requirement lines sorted, comments and blank lines
dropped, ``-r`` files followed) into the lock as a comment. `make lock-check`
runs ``check``: it fails when an input's digest no longer matches — a
requirement added, removed or re-constrained without re-locking — or when a
requirement of the .in is not pinned in the .txt. It reads no index, so new
files published for a pinned version never fail it.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

MARKER = "# input-digest: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def _lines(path: Path) -> list[str]:
    """The requirement lines of ``path``, with ``-r`` includes expanded."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines += _lines(path.parent / line.split(maxsplit=1)[1])
        else:
            lines.append(" ".join(line.split()))
    return lines


def digest(source: Path) -> str:
    return hashlib.sha256("\n".join(sorted(_lines(source))).encode()).hexdigest()


def _source(lock: Path) -> Path:
    return lock.with_suffix(".in")


def record(lock: Path) -> None:
    text = "".join(
        line for line in lock.read_text().splitlines(keepends=True) if not line.startswith(MARKER)
    )
    lock.write_text(f"{text}{MARKER}{digest(_source(lock))}\n")


def check(lock: Path) -> list[str]:
    source = _source(lock)
    text = lock.read_text()
    recorded = next(
        (line[len(MARKER) :].strip() for line in text.splitlines() if line.startswith(MARKER)),
        None,
    )
    problems = []
    if recorded != digest(source):
        problems.append(f"{source} changed since {lock} was locked")
    pinned = {canonicalize_name(name) for name in _PIN.findall(text)}
    for line in _lines(source):
        if line.startswith("-"):
            continue
        try:
            name = canonicalize_name(Requirement(line).name)
        except InvalidRequirement:
            problems.append(f"{source}: cannot parse {line!r}")
            continue
        if name not in pinned:
            problems.append(f"{source} requires {name}, which {lock} does not pin")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("record", "check"):
        print("usage: lockcheck.py record|check LOCK.txt...", file=sys.stderr)  # noqa: T201
        return 2
    locks = [Path(name) for name in argv[1:]]
    if argv[0] == "record":
        for lock in locks:
            record(lock)
        return 0
    problems = [problem for lock in locks for problem in check(lock)]
    for problem in problems:
        print(f"lock-check: {problem}", file=sys.stderr)  # noqa: T201
    if problems:
        print("lock-check: run `make lock` and commit the result", file=sys.stderr)  # noqa: T201
        return 1
    print(f"lock-check: {', '.join(map(str, locks))} match their inputs")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
