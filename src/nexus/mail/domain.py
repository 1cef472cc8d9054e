"""E-mail as a domain: the outbox table and the job that sends it."""

from __future__ import annotations

from nexus.domain import Domain
from nexus.mail import jobs, models

domain = Domain(name="mail", job_modules=(jobs,), models=(models,))
