"""The domains this service is made of: the one list the app factory, the worker and Alembic read.

Adding a domain is its package (with a ``domain.py``), its migration, its
tests, and one line here. Order matters only for event subscribers, which
run in this order.
"""

from __future__ import annotations

from nexus.accounts.domain import domain as accounts
from nexus.audit.domain import domain as audit
from nexus.domain import Domain
from nexus.jobs.domain import domain as jobs
from nexus.libraries.domain import domain as libraries
from nexus.mail.domain import domain as mail

DOMAINS: tuple[Domain, ...] = (accounts, audit, jobs, mail, libraries)
