"""What libraries and media do: plain functions on a session, no Flask, no nexus.api.

Every query is scoped to the viewer here, in the service layer: a library or
media the viewer cannot read is as absent as one that does not exist.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from nexus.accounts.events import UserCreated
from nexus.libraries.models import DEFAULT_LIBRARY_NAME, Library, LibraryRole, Membership


def create_default_library(session: Session, event: UserCreated) -> None:
    """Subscriber: every new user gets a default library, as its admin, in the same transaction."""
    library = Library(owner_user_id=event.user_id, name=DEFAULT_LIBRARY_NAME, is_default=True)
    session.add(library)
    session.flush()
    session.add(Membership(library_id=library.id, user_id=event.user_id, role=LibraryRole.ADMIN))
    session.flush()
