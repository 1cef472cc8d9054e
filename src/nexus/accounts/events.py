"""What accounts tells other domains, inside the transaction that made the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from nexus.infrastructure.events import Event


@dataclass(frozen=True)
class UserCreated(Event):
    """A user now exists: by registration, ``create-admin``, or any other path.

    Published after the row is flushed (its id is real) and before the
    commit; a subscriber that raises rolls the user back with it.
    """

    user_id: uuid.UUID
    email: str
    role: str
