"""Libraries and media as a domain: its tables, and the default library of every new user."""

from __future__ import annotations

from nexus.accounts.events import UserCreated
from nexus.domain import Domain
from nexus.libraries import models, services

domain = Domain(
    name="libraries",
    models=(models,),
    subscribers={UserCreated: [services.create_default_library]},
)
