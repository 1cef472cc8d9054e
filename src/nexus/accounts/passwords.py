"""Passwords: the policy a new password must meet, and Argon2id hashing with a bound.

Policy after NIST SP 800-63B: 12 to 128 characters, any characters; not a
common password (nor one padded with digits or symbols, nor repeated); not
the account's e-mail address. No composition rules.

Hashing is slow on purpose, and costs a core for as long as it runs (and
``NEXUS_ARGON2_MEMORY_KIB`` of memory). ``HashSlots`` bounds the hashes
running at once on a host — across every gunicorn process, not per process,
because the cores are the host's — to ``NEXUS_MAX_CONCURRENT_HASHES``
(default: half the usable cores). A request that cannot get a slot within
``NEXUS_HASH_WAIT_SECONDS`` is told to retry (503), so a login flood cannot
starve every other request. Verifying against a dummy hash when the account
does not exist makes "no such user" cost what "wrong password" costs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from nexus.accounts.errors import AuthUnavailable
from nexus.config import Settings

MIN_LENGTH = 12
MAX_LENGTH = 128
_PADDING = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_REPEATED = re.compile(r"^(.+?)\1+$")


@functools.cache
def common_passwords() -> frozenset[str]:
    text = resources.files("nexus.accounts").joinpath("common_passwords.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def policy_problems(password: str, *, email: str) -> list[str]:
    """Why ``password`` may not be used (empty when it may)."""
    if len(password) < MIN_LENGTH:
        return [f"Use at least {MIN_LENGTH} characters."]
    if len(password) > MAX_LENGTH:
        return [f"Use at most {MAX_LENGTH} characters."]
    lowered = password.lower()
    if lowered == email.strip().lower():
        return ["The password must not be your e-mail address."]
    candidates = {lowered, _PADDING.sub("", lowered)}
    repeated = _REPEATED.match(lowered)
    if repeated:
        candidates.add(repeated.group(1))
    if len(set(lowered)) <= 2 or candidates & common_passwords():
        return ["This password is too common; choose one that is hard to guess."]
    return []


class HashSlots:
    """At most ``count`` holders at once among all the processes that share ``directory``.

    One lock file per slot, held with ``flock(LOCK_EX | LOCK_NB)``: the kernel
    releases a dead process's slots, so a ``kill -9`` mid-hash leaks nothing.
    Each process opens the files once (after a fork, again: a descriptor
    inherited from the parent would share the parent's lock), and a
    ``threading.Lock`` per slot keeps two threads of one process apart,
    which ``flock`` on one descriptor would not. Refusing costs a few system
    calls, no file opened (docs/decisions/0024). Reentrant within a thread.
    """

    def __init__(self, directory: Path, count: int, wait_seconds: float) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            # Anyone who can write there could hold every slot and refuse all sign-ins.
            raise RuntimeError(
                f"{directory} (NEXUS_HASH_SLOTS_DIR) must be owned by this user and "
                "writable by it alone"
            )
        self._paths = [directory / f"slot-{number}.lock" for number in range(count)]
        self._wait = wait_seconds
        self._held = threading.local()
        self._opening = threading.Lock()
        self._pid = -1
        self._fds: list[int] = []
        self._in_process = [threading.Lock() for _ in self._paths]

    @contextmanager
    def hold(self) -> Iterator[None]:
        """A slot for the duration, or ``AuthUnavailable`` (a 503) if none frees in time."""
        # Held by this thread of this process (a forked child's copy of the
        # marker is not a slot of its own).
        if getattr(self._held, "owner", None) == os.getpid():
            yield
            return
        slot = self._take()
        self._held.owner = os.getpid()
        try:
            yield
        finally:
            self._held.owner = None
            fcntl.flock(self._fds[slot], fcntl.LOCK_UN)
            self._in_process[slot].release()

    def _descriptors(self) -> list[int]:
        with self._opening:
            if self._pid != os.getpid():
                # A forked child drops the parent's descriptors (closing its
                # copies releases nothing the parent holds) and locks, which
                # may have been taken when it forked.
                for inherited in self._fds:
                    os.close(inherited)
                self._in_process = [threading.Lock() for _ in self._paths]
                flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                self._fds = [os.open(path, flags, 0o600) for path in self._paths]
                self._pid = os.getpid()
            return self._fds

    def _take(self) -> int:
        fds = self._descriptors()
        deadline = time.monotonic() + self._wait
        while True:
            # From a random slot, so that processes do not all contend for the first.
            first = random.randrange(len(fds))  # noqa: S311 - spreading, not secrecy
            order: list[int] = [*range(first, len(fds)), *range(first)]
            for slot in order:
                if not self._in_process[slot].acquire(blocking=False):
                    continue
                try:
                    fcntl.flock(fds[slot], fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._in_process[slot].release()
                    continue
                except BaseException:
                    self._in_process[slot].release()
                    raise
                return slot
            if time.monotonic() >= deadline:
                raise AuthUnavailable(
                    "Too many sign-ins are being checked right now; retry in a few seconds.",
                    retry_after=2,
                )
            time.sleep(0.01)


class PasswordHasher:
    """Argon2id at the configured cost, with a host-wide bound on hashes at once."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self.slots = HashSlots(
            settings.hash_slots_path, settings.hash_slots, settings.hash_wait_seconds
        )
        # Made now, not at the first unknown e-mail: that login would pay for
        # a hash and a verify, and stand out.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def slot(self) -> contextlib.AbstractContextManager[None]:
        """Hold a hashing slot across more than one step (a lookup, then a verify).

        Taken before the database is touched, a login that will not get to
        hash is refused at the cost of a few system calls, not of a query.
        """
        return self.slots.hold()

    def hash(self, password: str) -> str:
        with self.slots.hold():
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``None`` (no such user) costs the same and fails."""
        with self.slots.hold():
            if password_hash is None:
                self._verify(self._dummy_hash, password)
                return False
            return self._verify(password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)
