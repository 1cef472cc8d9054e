"""The registry of job types: only registered functions can be enqueued.

A job type is declared where its work lives, with ``@job_type``::

    @job_type("widgets.recount", queue="low", timeout=120, retries=3)
    def recount(widget_id: str) -> dict[str, int]: ...

and carries its queue (``high``, ``default`` or ``low``, mapped to the
configured queue names), timeout, retry policy (RQ ``Retry`` with backoff
intervals) and result TTL. Enqueueing is by *name*: API and CLI input never
names an import path, and an unknown name is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from rq import Retry

Priority = Literal["high", "default", "low"]
F = TypeVar("F", bound=Callable[..., Any])

# Seconds before the 1st, 2nd, 3rd... retry; the last one repeats.
DEFAULT_RETRY_INTERVALS = (10, 60, 300)


@dataclass(frozen=True)
class JobType:
    name: str
    func: Callable[..., Any]
    priority: Priority = "default"
    timeout: int = 180
    retries: int = 0
    retry_intervals: tuple[int, ...] = DEFAULT_RETRY_INTERVALS
    result_ttl: int = 3600

    @property
    def import_path(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def retry(self) -> Retry | None:
        if self.retries <= 0:
            return None
        return Retry(max=self.retries, interval=list(self.retry_intervals))


_REGISTRY: dict[str, JobType] = {}


class UnknownJobError(KeyError):
    """No job type is registered under this name."""


def job_type(
    name: str,
    *,
    priority: Priority = "default",
    timeout: int = 180,
    retries: int = 0,
    retry_intervals: tuple[int, ...] = DEFAULT_RETRY_INTERVALS,
    result_ttl: int = 3600,
) -> Callable[[F], F]:
    """Register the decorated function as the job type ``name``."""

    def register(func: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"job type {name!r} is already registered by {existing.import_path}")
        _REGISTRY[name] = JobType(
            name=name,
            func=func,
            priority=priority,
            timeout=timeout,
            retries=retries,
            retry_intervals=retry_intervals,
            result_ttl=result_ttl,
        )
        return func

    return register


def get(name: str) -> JobType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJobError(name) from None


def names() -> list[str]:
    return sorted(_REGISTRY)
