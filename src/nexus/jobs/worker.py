"""The RQ worker classes that run every job inside the Nexus app, and keep its row true.

``NexusWorker`` is what ``flask --app nexus worker`` starts (and, through
``nexus.rqworker``, a plain ``rq worker``): each job runs in a forked
work horse inside an app context, so it has the settings, its own database
session (closed when the job ends) and the log context ``job_id``,
``job_name``, ``queue``, and the enqueuing request's ``request_id`` and
``user_id``. Exceptions are left to RQ so its failed-job registry and
retries see them.

Beside the work loop runs the relay (``nexus.jobs.relay``): it delivers
what Redis did not take, recovers what it lost, retries what dead workers
abandoned, and enqueues periodic jobs when their tick is due.

Each attempt is written to the job's row (when it has one), in transactions
of their own:

- before it runs, the attempt is counted; a job whose row was canceled, has
  ended, or is running elsewhere is not run at all;
- while it runs, the worker (not the horse) writes a heartbeat every
  ``NEXUS_ABANDONED_JOB_SECONDS / 6`` seconds, which is how the reconciler
  tells a slow job from one whose worker was killed;
- how it ended is written *before* RQ acts on it (queues a retry, say), so
  the row never lags behind a retry another worker already started. That
  includes a work horse killed under a living worker: RQ reports it to the
  worker, and so do we.

The horse (and RQ's scheduler process) die with their worker
(``PR_SET_PDEATHSIG``): an orphaned horse would run on unsupervised after its
job was declared abandoned and retried.
The serializer is always JSON, whatever a command line says, because that
is what the queues write. ``NexusSimpleWorker`` (``NEXUS_WORKER_MODE=simple``)
runs each job in the worker process itself, heartbeating from a thread: for
many short jobs (see its docstring for what it gives up).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import structlog
from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.job import JobStatus as RQJobStatus
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.worker.base import BaseWorker
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nexus.infrastructure import context, metrics, tracing
from nexus.infrastructure.database import get_database
from nexus.infrastructure.logging import get_logger
from nexus.infrastructure.queue import SERIALIZER
from nexus.jobs import registry
from nexus.jobs import services as job_services
from nexus.jobs.models import JobStatus
from nexus.jobs.ping import ping
from nexus.jobs.relay import Relay

log = get_logger(__name__)
T = TypeVar("T")
# While PostgreSQL cannot record a start, the job goes back to its queue and
# the worker waits this long before trying again.
START_RETRY_SECONDS = 2.0
MAINTENANCE_SECONDS = 60
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The one job that runs without a jobs row: `flask --app nexus jobs ping`.
PING = f"{ping.__module__}.{ping.__qualname__}"


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def heartbeat_interval(abandoned_seconds: int) -> int:
    """Seconds between heartbeats: six chances before a job counts as abandoned."""
    return max(1, abandoned_seconds // 6)


class _AppWorkerMixin(BaseWorker):
    """Pushes the app context, binds the log context, and records each attempt."""

    # RQ doubles its wait between attempts to reach a lost Redis up to 60 s,
    # so a worker could sit out most of a minute after Redis is back.
    max_connection_wait_time = 5.0

    def __init__(self, *args: Any, app: Flask, **kwargs: Any) -> None:
        self.app = app
        settings = app.extensions["nexus.settings"]
        self.shutdown_grace: int = settings.worker_shutdown_grace
        kwargs["serializer"] = SERIALIZER
        kwargs.setdefault(
            "job_monitoring_interval", heartbeat_interval(settings.abandoned_job_seconds)
        )
        # The attempt this process is running: set before the job runs, and
        # inherited by the forked work horse.
        self._attempt: int | None = None
        self._trace_parent: str | None = None
        super().__init__(*args, **kwargs)

    @property
    def stop_requested(self) -> bool:
        """SIGTERM/SIGINT was received (as opposed to the work loop ending on an error)."""
        # RQ only sets _stop_requested when a job is running.
        return bool(self._stop_requested) or self._shutdown_requested_date is not None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: finish the running job, but within the grace period.

        RQ's warm shutdown waits for the job however long it takes; a deploy
        cannot. After ``NEXUS_WORKER_SHUTDOWN_GRACE`` seconds we send ourselves
        the second signal, RQ's cold shutdown: the job's horse is killed (the
        job stops heartbeating, so the reconciler retries it) and the worker
        still exits 0.
        """
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # raises when idle
        if self._stop_requested:
            self.log.info(
                "Worker %s: draining, the running job has %s s to finish",
                self.name,
                self.shutdown_grace,
            )
            timer = threading.Timer(self.shutdown_grace, self._grace_expired)
            timer.daemon = True
            timer.start()

    def _grace_expired(self) -> None:
        self.log.warning("Worker %s: shutdown grace expired, stopping the job", self.name)
        os.kill(os.getpid(), signal.SIGTERM)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """RQ's work loop, with the relay beside it (not in burst mode: tests, one-offs)."""
        burst = kwargs.get("burst", args[0] if args else False)
        relay = None if burst else Relay(self.app)
        if relay is not None:
            relay.start()
        try:
            worked: bool = super().work(*args, **kwargs)
        finally:
            if relay is not None:
                relay.stopped.set()
        return worked

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            self._execute(job, queue)
        except RedisError as exc:
            # Redis went away during RQ's bookkeeping around the job. RQ
            # would end the worker here; instead it waits for Redis in its
            # dequeue loop. A horse it can no longer supervise is stopped:
            # the job's row has what the reconciler needs to retry it.
            if self.horse_pid:
                self.kill_horse()
                self.wait_for_horse()
            log.warning("jobs.redis_lost_during_job", job_id=job.id, error=str(exc))
        finally:
            self._attempt = None

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # RQ's work loop heartbeats between jobs outside its Redis retry
        # loop, so a Redis blip there ends the worker. Skip this beat; the
        # next dequeue meets the same error inside that loop and waits.
        try:
            super().heartbeat(timeout, pipeline)
        except RedisError as exc:
            log.warning("jobs.worker_heartbeat_failed", error=str(exc))

    def _execute(self, job: Job, queue: Queue) -> None:
        # RQ would import and call whatever function the job names: anyone
        # who can write to Redis could run any importable code here.
        if job.func_name != PING and job.func_name not in registry.import_paths():
            self._refuse(job, queue, f"{job.func_name} is not a registered job type")
            return
        attempt = self._report(
            lambda session: job_services.start_attempt(session, job.id, worker=self.name)
        )
        if attempt is None:
            self._put_back(job, queue)
            return
        if not attempt.run:
            self._skip(job, queue, attempt.status)
            return
        if attempt.number is None and job.func_name != PING:
            # Registered work, but pushed into Redis by hand: its arguments
            # were never checked by enqueue, and nothing would record it.
            self._refuse(job, queue, "it has no jobs row: it was not enqueued through Nexus")
            return
        self._attempt = attempt.number
        self._trace_parent = attempt.trace_parent
        if attempt.number is None:  # the ping: no row, no metrics
            super().execute_job(job, queue)
            return
        # Counted here, in the worker, not in the process it forks for the
        # job: that one's counts would die with it.
        name = registry.name_of(job.func_name)
        metrics.JOBS_STARTED.labels(job=name).inc()
        started = time.monotonic()
        try:
            super().execute_job(job, queue)
        finally:
            metrics.JOB_DURATION.labels(job=name).observe(time.monotonic() - started)
            _count_outcome(job, name)

    def _refuse(self, job: Job, queue: Queue, reason: str) -> None:
        """Fail the job without importing or running anything, visibly."""
        log.error("jobs.refused", job_id=job.id, function=job.func_name, reason=reason)
        exc_string = f"Refused by worker {self.name}: {reason}"
        with self.connection.pipeline() as pipeline:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            job.set_status(RQJobStatus.FAILED, pipeline=pipeline)
            queue.failed_job_registry.add(
                job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=pipeline
            )
            Result.create_failure(
                job,
                job.failure_ttl,
                exc_string=exc_string,
                worker_name=self.name,
                pipeline=pipeline,
            )
            pipeline.execute()

    def _put_back(self, job: Job, queue: Queue) -> None:
        """PostgreSQL could not count the attempt: a job does not run unrecorded."""
        self.log.warning("Worker %s: cannot record the start of %s; requeued", self.name, job.id)
        with self.connection.pipeline() as pipeline:
            queue.enqueue_job(job, pipeline=pipeline, at_front=True)
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        time.sleep(START_RETRY_SECONDS)

    def _skip(self, job: Job, queue: Queue, status: str | None) -> None:
        """A duplicate delivery, or a job canceled after RQ handed it out."""
        log.info("jobs.skipped", job_id=job.id, status=status)
        self.connection.lrem(queue.intermediate_queue_key, 1, job.id)
        if status == JobStatus.CANCELED:
            with contextlib.suppress(InvalidJobOperation):  # canceled in RQ already
                job.cancel()

    def perform_job(self, job: Job, queue: Queue) -> bool:
        meta = job.meta or {}
        with (
            self.app.app_context(),
            # Work this job enqueues carries the same origin on.
            context.scope(
                request_id=meta.get("request_id") or None,
                user_id=_uuid_or_none(meta.get("user_id")),
            ),
        ):
            # The enqueuing request's id joins its logs with the job's.
            structlog.contextvars.bind_contextvars(
                job_id=job.id,
                job_name=job.func_name,
                queue=queue.name,
                attempt=self._attempt,
                request_id=meta.get("request_id"),
                user_id=meta.get("user_id") or None,
            )
            try:
                # The job's spans (its SQL, its Redis calls) join the trace of
                # the request that enqueued it.
                with tracing.job_span(
                    registry.name_of(job.func_name or ""),
                    self._trace_parent,
                    **{"messaging.message.id": job.id, "nexus.job.attempt": self._attempt or 0},
                ):
                    performed: bool = super().perform_job(job, queue)
            finally:
                structlog.contextvars.clear_contextvars()
        return performed

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # The job has returned; RQ heartbeats it once more before recording
        # the success. A Redis blip there must not turn work that is done
        # into a failure that never reaches the row.
        try:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
        except RedisError as exc:
            log.warning("jobs.heartbeat_to_redis_failed", job_id=job.id, error=str(exc))

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: StartedJobRegistry
    ) -> None:
        attempt = self._attempt
        if attempt is not None:
            result = getattr(job, "_result", None)  # RQ sets it just before calling us
            self._report(
                lambda session: job_services.mark_outcome(
                    session, job.id, attempt=attempt, status=JobStatus.FINISHED, result=result
                )
            )
        super().handle_job_success(job, queue, started_job_registry)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
    ) -> None:
        """Record the failure first: RQ may queue the retry, and another worker start it at once."""
        attempt = self._attempt
        if attempt is not None:
            stopped = self._stopped_job_id == job.id  # canceled by an admin: the row says so
            retry_in = None
            if stopped or not job.should_retry:
                status = JobStatus.FAILED
            elif retry_in := job.get_retry_interval():
                status = JobStatus.SCHEDULED  # RQ's scheduler (or the relay) queues it when due
            else:
                status = JobStatus.QUEUED
            self._report(
                lambda session: job_services.mark_outcome(
                    session,
                    job.id,
                    attempt=attempt,
                    status=status,
                    exc_string=exc_string or "Error: the job failed",
                    timed_out="JobTimeoutException" in exc_string,
                    retry_in=retry_in,
                )
            )
        super().handle_job_failure(job, queue, started_job_registry, exc_string)

    def _report(self, write: Callable[[Session], T]) -> T | None:
        """Write to the job's row in a transaction of its own; ``None`` if PostgreSQL failed.

        A failed write never fails the job: the reconciler repairs the row
        from what RQ recorded.
        """
        try:
            with (
                self.app.app_context(),
                get_database().sessionmaker() as session,
                session.begin(),
            ):
                return write(session)
        except SQLAlchemyError as exc:
            log.error("jobs.record_failed", error=str(exc))
            return None


def _count_outcome(job: Job, name: str) -> None:
    """How the attempt ended, as RQ recorded it (the parent process's view)."""
    try:
        status = job.get_status(refresh=True)
    except (RedisError, InvalidJobOperation):
        return  # the reconciler settles the row; the metric misses one attempt
    if status == RQJobStatus.FINISHED:
        metrics.JOBS_FINISHED.labels(job=name).inc()
    elif status == RQJobStatus.FAILED:
        metrics.JOBS_FAILED.labels(job=name).inc()
    elif status in (RQJobStatus.SCHEDULED, RQJobStatus.QUEUED, RQJobStatus.DEFERRED):
        metrics.JOBS_RETRIED.labels(job=name).inc()


class NexusScheduler(RQScheduler):
    """RQ's scheduler process, which ends with a log record rather than a raw traceback.

    RQ runs its scheduler in a child process and lets an error (Redis going
    away, typically) escape it, so ``multiprocessing`` prints the traceback
    straight to stderr: the one line of a worker's output that is not JSON.
    Here the error is logged, and the process ends; the worker's maintenance
    pass (every ``MAINTENANCE_SECONDS``) starts a new scheduler once it can
    take the scheduler lock again.
    """

    def work(self) -> None:
        try:
            super().work()  # type: ignore[no-untyped-call]
        except Exception as exc:  # whatever ends it is logged, once
            log.warning("jobs.scheduler_stopped", error=f"{type(exc).__name__}: {exc}")


class _ServingMixin(BaseWorker):
    """What both production workers share: RQ's scheduler with our log record, a
    maintenance pass every minute, children that die with the worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # RQ re-takes the scheduler lock of a killed worker (61 s TTL) only in
        # its maintenance pass; every 10 minutes by default is too rare.
        kwargs.setdefault("maintenance_interval", MAINTENANCE_SECONDS)
        super().__init__(*args, **kwargs)

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's own ``_start_scheduler``, with :class:`NexusScheduler` as the scheduler."""
        self.scheduler = NexusScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            finally:
                self.scheduler.release_locks()  # type: ignore[no-untyped-call]
                self.scheduler.register_death()
        else:
            self.scheduler.start()  # type: ignore[no-untyped-call]

    def work(self, *args: Any, **kwargs: Any) -> bool:
        _children_die_with(os.getpid())
        worked: bool = super().work(*args, **kwargs)
        return worked


class NexusWorker(_AppWorkerMixin, _ServingMixin, Worker):
    """Forks a work horse per job, so a crashing job cannot take the worker down."""

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ kills the horse's process group; never while that is still ours.

        A horse leaves the worker's group first thing after the fork. Killing
        "its" group before it has would kill the worker and everything that
        shares its group (a shell, a CI run): signal the horse alone then.
        """
        try:
            if os.getpgid(self.horse_pid) == os.getpgrp():
                os.kill(self.horse_pid, sig)
                return
        except ProcessLookupError:
            return
        super().kill_horse(sig)

    def maintain_heartbeats(self, job: Job) -> None:
        attempt = self._attempt
        if attempt is not None:
            wanted = self._report(lambda session: job_services.heartbeat(session, job.id, attempt))
            if wanted is False and self.horse_pid:
                # Canceled (RQ's stop command can miss a job that is just
                # starting, or be sent while Redis is down), or replaced by
                # a retry: stop it, as RQ's stop command would.
                log.warning("jobs.stopping_unwanted_attempt", job_id=job.id, attempt=attempt)
                self._stopped_job_id = job.id
                self.kill_horse()
        try:
            super().maintain_heartbeats(job)
        except RedisError as exc:
            # RQ lets this end the worker (and so the job) on a Redis blip.
            # The job does not need Redis to run, and PostgreSQL has its
            # heartbeat: keep supervising it.
            log.warning("jobs.heartbeat_to_redis_failed", job_id=job.id, error=str(exc))

    def set_current_job_working_time(
        self, current_job_working_time: float, pipeline: Any = None
    ) -> None:
        # Bookkeeping for dashboards, written while supervising a horse: a
        # Redis blip here must not end the worker either (its dequeue loop
        # waits for Redis to come back).
        try:
            super().set_current_job_working_time(current_job_working_time, pipeline)
        except RedisError as exc:
            log.warning("jobs.worker_state_not_saved", error=str(exc))


class _HeartbeatingSimpleWorker(SimpleWorker):
    """RQ's SimpleWorker, heartbeating from a thread while a job runs in the main one.

    A forking worker heartbeats while it waits for its horse; a simple worker
    is busy running the job, so a thread does it (the row's heartbeat, and
    RQ's), or every job longer than ``NEXUS_ABANDONED_JOB_SECONDS`` would
    look abandoned and be run again beside itself.
    """

    def execute_job(self, job: Job, queue: Queue) -> None:
        done = threading.Event()
        beating = threading.Thread(
            target=self._beat, args=(job, done), name="job-heartbeat", daemon=True
        )
        beating.start()
        try:
            super().execute_job(job, queue)
        finally:
            done.set()
            beating.join()

    def _beat(self, job: Job, done: threading.Event) -> None:
        while not done.wait(self.job_monitoring_interval):
            self.maintain_heartbeats(job)


class NexusSimpleWorker(_AppWorkerMixin, _ServingMixin, _HeartbeatingSimpleWorker):
    """Runs each job in the worker process itself: no fork, pooled connections kept.

    ``NEXUS_WORKER_MODE=simple``. For many short jobs: no process is forked
    and torn down per job, and the job's database and Redis connections are
    the worker's pooled ones. What it gives up: a job that crashes the
    interpreter (a segfault, ``os._exit``) or leaks memory takes the worker
    with it (the supervisor restarts it; the reconciler retries the job),
    and a running job cannot be stopped by a cancel (it is marked canceled
    and its outcome is not recorded over that).
    """

    def maintain_heartbeats(self, job: Job) -> None:
        attempt = self._attempt
        if attempt is not None:
            wanted = self._report(lambda session: job_services.heartbeat(session, job.id, attempt))
            if wanted is False:
                log.warning("jobs.unwanted_attempt_runs_on", job_id=job.id, attempt=attempt)
        try:
            super().maintain_heartbeats(job)
        except RedisError as exc:
            log.warning("jobs.heartbeat_to_redis_failed", job_id=job.id, error=str(exc))


_DEATH_PACT: list[int] = []


def _children_die_with(worker_pid: int) -> None:
    """Have the kernel SIGKILL the worker's direct children (horse, scheduler) when it dies.

    An orphaned horse would run on, unsupervised, beside the retry of its
    job; an orphaned RQ scheduler would keep the scheduler lock. Linux only
    (``PR_SET_PDEATHSIG``); registered once per process.
    """
    if not sys.platform.startswith("linux") or _DEATH_PACT:
        return
    _DEATH_PACT.append(worker_pid)
    # Resolved here, in the parent: the worker has threads (relay, pubsub),
    # and loading a library in a child forked from a threaded process can
    # deadlock on a lock some other thread held at the fork.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def after_fork_in_child() -> None:
        # Only the worker's own children: a job's own subprocesses are left alone.
        if os.getppid() == worker_pid:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    os.register_at_fork(after_in_child=after_fork_in_child)
