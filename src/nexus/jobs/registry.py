"""The registry of job types: only registered functions can be enqueued.

A job type is declared where its work lives, with ``@job_type``::

    @job_type("widgets.recount", queue="low", timeout=120, retries=3)
    def recount(widget_id: str) -> dict[str, int]: ...

and carries its queue (``high``, ``default`` or ``low``, mapped to the
configured queue names), timeout, retry policy (RQ ``Retry`` with backoff
intervals), result TTL, uniqueness (``unique=True``: at most one job of this
type with the same arguments is waiting or running; enqueueing another
returns that one) and, for a periodic job, its schedule: a cron string in
UTC (``schedule="*/5 * * * *"``); periodic jobs take no arguments.
Enqueueing is by *name*: API and CLI input never names an import path, and
an unknown name is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from croniter import croniter
from rq import Retry

Priority = Literal["high", "default", "low"]
F = TypeVar("F", bound=Callable[..., Any])

# Seconds before the 1st, 2nd, 3rd... retry; the last one repeats.
DEFAULT_RETRY_INTERVALS = (10, 60, 300)
PRIORITIES = ("high", "default", "low")


@dataclass(frozen=True)
class JobType:
    name: str
    func: Callable[..., Any]
    priority: Priority = "default"
    timeout: int = 180
    retries: int = 0
    retry_intervals: tuple[int, ...] = DEFAULT_RETRY_INTERVALS
    result_ttl: int = 3600
    unique: bool = False
    schedule: str | None = None

    @property
    def import_path(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def interval(self, retry_number: int) -> int:
        """Seconds to wait before retry ``retry_number`` (0 = the first retry)."""
        if not self.retry_intervals:
            return 0
        return self.retry_intervals[min(retry_number, len(self.retry_intervals) - 1)]

    def retry(self, *, remaining: int, used: int = 0) -> Retry | None:
        """RQ's retry policy for ``remaining`` more retries, ``used`` having been spent.

        RQ reads its interval list from the end (the last retry takes the last
        interval), so the list is laid out to hold exactly the retries left.
        """
        if remaining <= 0:
            return None
        intervals = [self.interval(number) for number in range(used, used + remaining)]
        return Retry(max=remaining, interval=intervals)


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
    unique: bool = False,
    schedule: str | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the job type ``name``."""
    # Mistakes here are programming errors: fail at import, not at 3 a.m.
    if priority not in PRIORITIES:
        raise ValueError(f"job type {name!r}: priority must be one of {PRIORITIES}")
    if retries < 0 or timeout < 1 or any(seconds < 0 for seconds in retry_intervals):
        raise ValueError(f"job type {name!r}: retries, timeout and intervals must be >= 0")
    if schedule is not None and not croniter.is_valid(schedule):
        raise ValueError(f"job type {name!r}: {schedule!r} is not a cron expression")

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
            unique=unique,
            schedule=schedule,
        )
        return func

    return register


def get(name: str) -> JobType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJobError(name) from None


def import_paths() -> frozenset[str]:
    """The functions registered job types run, as RQ names them (``module.function``)."""
    return frozenset(job_type.import_path for job_type in _REGISTRY.values())


def name_of(import_path: str) -> str:
    """The registered name of the job type running ``import_path`` (for labels), else ``other``."""
    for job_type in _REGISTRY.values():
        if job_type.import_path == import_path:
            return job_type.name
    return "other"


def names() -> list[str]:
    return sorted(_REGISTRY)


def periodic() -> list[JobType]:
    """The job types that run on a schedule, by name."""
    return [_REGISTRY[name] for name in names() if _REGISTRY[name].schedule is not None]
