"""Passwords: the policy a new password must meet, and Argon2id hashing with a bound.

Policy after NIST SP 800-63B: 12 to 128 characters, any characters; not a
common password (nor one padded with digits or symbols, nor repeated); not
the account's e-mail address. No composition rules.

Hashing is slow on purpose. ``PasswordHasher`` runs at most
``NEXUS_MAX_CONCURRENT_HASHES`` hashes at once per process (each also holds
``NEXUS_ARGON2_MEMORY_KIB`` of memory); a request that cannot get a slot
within ``NEXUS_HASH_WAIT_SECONDS`` is told to retry (503), so a login flood
cannot starve every other request. Verifying against a dummy hash when the
account does not exist makes "no such user" cost what "wrong password" costs.
"""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

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


class PasswordHasher:
    """Argon2id at the configured cost, with a bound on concurrent hashes."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_hashes)
        self._wait = settings.hash_wait_seconds
        # Made now, not at the first unknown e-mail: that login would pay for
        # a hash and a verify, and stand out.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait or None, blocking=self._wait > 0):
            raise AuthUnavailable(
                "Too many sign-ins are being checked right now; retry in a few seconds.",
                retry_after=2,
            )
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``None`` (no such user) costs the same and fails."""
        with self._slot():
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
