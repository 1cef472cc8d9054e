"""The audit log as a domain: its admin listing and its table."""

from __future__ import annotations

from nexus.audit import models, routes
from nexus.domain import Domain

domain = Domain(
    name="audit",
    blueprints=((routes.bp, "/admin"),),
    models=(models,),
)
