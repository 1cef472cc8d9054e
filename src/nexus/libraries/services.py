"""What libraries do: plain functions on a session, no Flask, no nexus.api.

Every query is scoped to the viewer here, in the service layer: a library the
viewer is not a member of is as absent (``LibraryNotFound``) as one that does
not exist. Membership changes lock the library's row first, so two admins
demoting each other at once cannot leave it with none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from nexus.accounts.events import UserCreated
from nexus.accounts.models import User
from nexus.accounts.services import find_by_email
from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.infrastructure.keyset import Keyset
from nexus.libraries.errors import (
    AccountNotFound,
    AlreadyMember,
    DefaultLibraryForbidden,
    LastLibraryAdmin,
    LibraryNotFound,
    NotLibraryAdmin,
)
from nexus.libraries.models import DEFAULT_LIBRARY_NAME, Library, LibraryRole, Membership


def create_default_library(session: Session, event: UserCreated) -> None:
    """Subscriber: every new user gets a default library, as its admin, in the same transaction."""
    library = Library(owner_user_id=event.user_id, name=DEFAULT_LIBRARY_NAME, is_default=True)
    session.add(library)
    session.flush()
    session.add(Membership(library_id=library.id, user_id=event.user_id, role=LibraryRole.ADMIN))
    session.flush()


@dataclass(frozen=True)
class LibraryView:
    """A library as one viewer sees it: with their role."""

    id: uuid.UUID
    name: str
    is_default: bool
    owner_user_id: uuid.UUID
    role: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, library: Library, role: str) -> LibraryView:
        return cls(
            id=library.id,
            name=library.name,
            is_default=library.is_default,
            owner_user_id=library.owner_user_id,
            role=role,
            created_at=library.created_at,
            updated_at=library.updated_at,
        )


# Oldest first.
LIBRARIES_KEYSET = Keyset((Library.created_at, Library.id))


def list_libraries(
    session: Session, *, viewer: uuid.UUID, after: tuple[Any, ...] | None, limit: int
) -> list[LibraryView]:
    """The libraries ``viewer`` belongs to, after the key ``after``."""
    query = select(Library, Membership.role).join(
        Membership, (Membership.library_id == Library.id) & (Membership.user_id == viewer)
    )
    rows = session.execute(LIBRARIES_KEYSET.page(query, after, limit)).all()
    return [LibraryView.of(library, role) for library, role in rows]


def get_library(session: Session, *, viewer: uuid.UUID, library_id: uuid.UUID) -> LibraryView:
    library, role = visible(session, viewer, library_id)
    return LibraryView.of(library, role)


def create_library(
    session: Session, *, viewer: uuid.UUID, name: str, context: AuditContext
) -> LibraryView:
    library = Library(owner_user_id=viewer, name=name)
    session.add(library)
    session.flush()
    session.add(Membership(library_id=library.id, user_id=viewer, role=LibraryRole.ADMIN))
    session.flush()
    session.refresh(library)
    audit.record(
        session=session, context=context, action="library.create",
        target_type="library", target_id=library.id, meta={"name": name},
    )  # fmt: skip
    return LibraryView.of(library, LibraryRole.ADMIN)


def rename_library(
    session: Session, *, viewer: uuid.UUID, library_id: uuid.UUID, name: str, context: AuditContext
) -> LibraryView:
    library, role = administered(session, viewer, library_id)
    if library.is_default:
        raise DefaultLibraryForbidden("The default library cannot be renamed.")
    old = library.name
    library.name = name
    session.flush()
    session.refresh(library)
    audit.record(
        session=session, context=context, action="library.rename",
        target_type="library", target_id=library.id, meta={"from": old, "to": name},
    )  # fmt: skip
    return LibraryView.of(library, role)


def delete_library(
    session: Session, *, viewer: uuid.UUID, library_id: uuid.UUID, context: AuditContext
) -> None:
    library, _role = administered(session, viewer, library_id)
    if library.is_default:
        raise DefaultLibraryForbidden("The default library cannot be deleted.")
    session.delete(library)
    session.flush()
    audit.record(
        session=session, context=context, action="library.delete",
        target_type="library", target_id=library_id, meta={"name": library.name},
    )  # fmt: skip


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime


def list_members(session: Session, *, viewer: uuid.UUID, library_id: uuid.UUID) -> list[MemberView]:
    """Everyone in the library (any member may see who else is): admins first, then by address."""
    visible(session, viewer, library_id)
    rows = session.execute(
        select(Membership.user_id, User.email, Membership.role, Membership.created_at)
        .join(User, User.id == Membership.user_id)
        .where(Membership.library_id == library_id)
        .order_by(Membership.role, User.email_key)
    ).all()
    return [MemberView(*row) for row in rows]


def add_member(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    email: str,
    role: str,
    context: AuditContext,
) -> MemberView:
    """Add the account with ``email``; an address with no account is a 404 (decision 0028)."""
    administered(session, viewer, library_id, lock=True)
    user = find_by_email(session, email)
    if user is None:
        raise AccountNotFound("No account has this e-mail address.")
    if session.get(Membership, (library_id, user.id)) is not None:
        raise AlreadyMember("This user is a member of the library already.")
    membership = Membership(library_id=library_id, user_id=user.id, role=role)
    session.add(membership)
    session.flush()
    session.refresh(membership)
    audit.record(
        session=session, context=context, action="membership.add",
        target_type="library", target_id=library_id, meta={"user_id": str(user.id), "role": role},
    )  # fmt: skip
    return MemberView(user.id, user.email, role, membership.created_at)


def change_member_role(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    context: AuditContext,
) -> MemberView:
    administered(session, viewer, library_id, lock=True)
    membership = _membership(session, library_id, user_id)
    if membership.role == LibraryRole.ADMIN and role != LibraryRole.ADMIN:
        _keep_an_admin(session, library_id)
    old = membership.role
    membership.role = role
    session.flush()
    audit.record(
        session=session, context=context, action="membership.update",
        target_type="library", target_id=library_id,
        meta={"user_id": str(user_id), "from": old, "to": role},
    )  # fmt: skip
    email = session.scalar(select(User.email).where(User.id == user_id)) or ""
    return MemberView(user_id, email, role, membership.created_at)


def remove_member(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    user_id: uuid.UUID,
    context: AuditContext,
) -> None:
    """An admin removes anyone; a member may remove themself. The last admin stays."""
    library, role = visible(session, viewer, library_id, lock=True)
    if user_id != viewer and role != LibraryRole.ADMIN:
        raise NotLibraryAdmin("Only the library's admins may remove other members.")
    membership = _membership(session, library_id, user_id)
    if membership.role == LibraryRole.ADMIN:
        _keep_an_admin(session, library_id)
    session.execute(
        delete(Membership).where(Membership.library_id == library.id, Membership.user_id == user_id)
    )
    audit.record(
        session=session, context=context, action="membership.remove",
        target_type="library", target_id=library_id, meta={"user_id": str(user_id)},
    )  # fmt: skip


def visible(
    session: Session, viewer: uuid.UUID, library_id: uuid.UUID, *, lock: bool = False
) -> tuple[Library, str]:
    """The library and the viewer's role in it; ``LibraryNotFound`` if they are not a member."""
    query = (
        select(Library, Membership.role)
        .join(Membership, (Membership.library_id == Library.id) & (Membership.user_id == viewer))
        .where(Library.id == library_id)
    )
    if lock:
        # Serialises every membership change of one library.
        query = query.with_for_update(of=Library)
    row = session.execute(query).first()
    if row is None:
        raise LibraryNotFound("No such library.")
    return row[0], row[1]


def administered(
    session: Session, viewer: uuid.UUID, library_id: uuid.UUID, *, lock: bool = False
) -> tuple[Library, str]:
    """As :func:`visible`, and ``NotLibraryAdmin`` unless the viewer is one of its admins."""
    library, role = visible(session, viewer, library_id, lock=lock)
    if role != LibraryRole.ADMIN:
        raise NotLibraryAdmin("Only the library's admins may do this.")
    return library, role


def _membership(session: Session, library_id: uuid.UUID, user_id: uuid.UUID) -> Membership:
    membership = session.get(Membership, (library_id, user_id))
    if membership is None:
        raise LibraryNotFound("No such member of this library.")
    return membership


def _keep_an_admin(session: Session, library_id: uuid.UUID) -> None:
    admins = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.library_id == library_id, Membership.role == LibraryRole.ADMIN)
    )
    if (admins or 0) <= 1:
        raise LastLibraryAdmin("This is the library's last admin; make another admin first.")
