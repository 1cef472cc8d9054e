"""Account operations: register, sign in, change or delete, and what admins do to users.

Plain functions with the session passed in; the caller owns the transaction
(``with transaction(session): ...``). Each records its audit row in that same
transaction. They raise domain errors (``accounts.errors``) for what a
client can fix, and never touch the request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nexus.accounts import emails, tokens
from nexus.accounts.errors import EmailTaken, LastAdmin, RegistrationClosed, UserNotFound
from nexus.accounts.events import UserCreated
from nexus.accounts.lockout import Lockout
from nexus.accounts.models import Invite, Role, User
from nexus.accounts.passwords import PasswordHasher, policy_problems
from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.errors import InvalidInput
from nexus.infrastructure import events
from nexus.infrastructure.keyset import Keyset


def _now() -> datetime:
    return datetime.now(UTC)


def _invite_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_key == emails.key(email)))


def _check_policy(password: str, email: str, field: str = "password") -> None:
    problems = policy_problems(password, email=email)
    if problems:
        raise InvalidInput(
            "The password does not meet the policy.",
            errors=[{"field": field, "message": message} for message in problems],
        )


def register(
    *,
    session: Session,
    hasher: PasswordHasher,
    mode: str,
    email: str,
    password: str,
    invite_code: str | None,
    context: AuditContext,
) -> User:
    """A new member account. Revealing that an address is taken is deliberate
    (docs/decisions/0012): the caller would learn it anyway by trying to sign in
    after a password reset, and a clear 409 saves real users confusion."""
    if mode == "closed":
        raise RegistrationClosed("Registration is closed.")
    _check_policy(password, email)
    invite: Invite | None = None
    if mode == "invite":
        invite = _claim_invite(session, invite_code)
    with hasher.slot():
        if find_by_email(session, email) is not None:
            raise EmailTaken("An account with this e-mail address exists.")
        user = User(email=email.strip(), password_hash=hasher.hash(password), role=Role.MEMBER)
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # registered by a concurrent request just now
        raise EmailTaken("An account with this e-mail address exists.") from None
    session.refresh(user)
    events.publish(session, UserCreated(user_id=user.id, email=user.email, role=user.role))
    actor = context.as_actor(user.id, user.role)
    audit.record(
        session=session,
        context=actor,
        action="auth.register",
        target_type="user",
        target_id=user.id,
    )
    if invite is not None:
        invite.used_at = _now()
        invite.used_by = user.id
        audit.record(
            session=session,
            context=actor,
            action="invite.use",
            target_type="invite",
            target_id=invite.id,
        )
    return user


def _claim_invite(session: Session, code: str | None) -> Invite:
    invalid = InvalidInput(
        "Registration needs a valid invite code.",
        errors=[{"field": "invite_code", "message": "Missing, unknown, used or expired."}],
    )
    if not code:
        raise invalid
    invite = session.scalar(
        select(Invite).where(Invite.code_sha256 == _invite_digest(code)).with_for_update()
    )
    if invite is None or invite.used_at is not None or invite.expires_at <= _now():
        raise invalid
    return invite


def create_invite(*, session: Session, hours: int, context: AuditContext) -> tuple[str, datetime]:
    """A single-use code valid for ``hours``; only its SHA-256 is stored."""
    code = secrets.token_urlsafe(24)
    invite = Invite(
        code_sha256=_invite_digest(code),
        created_by=context.actor_id,
        expires_at=_now() + timedelta(hours=hours),
    )
    session.add(invite)
    session.flush()
    audit.record(
        session=session,
        context=context,
        action="invite.create",
        target_type="invite",
        target_id=invite.id,
        meta={"expires_in_hours": hours},
    )
    return code, invite.expires_at


@dataclass(frozen=True)
class LoginAttempt:
    """How a login went: the user signed in, or why not (never told to the client)."""

    user: User | None
    account_id: uuid.UUID | None = None  # the account a failure was against
    refused_by_lock: bool = False
    lock_seconds: int | None = None  # this failure locked the account for so long


def authenticate(
    *,
    session: Session,
    hasher: PasswordHasher,
    email: str,
    password: str,
    lockout: Lockout,
    address: str | None,
    known_address_days: int,
) -> LoginAttempt:
    """Sign in the active user with this e-mail and password, if the lockout allows.

    An unknown address, a wrong password, an inactive account and a locked
    one cost the same Argon2 verification and fail alike. A locked account
    still signs in from an address it signed in from lately.
    """
    with hasher.slot():
        user = find_by_email(session, email)
        if (
            user is not None
            and lockout.locked(user.id)
            and not _known_address(session, user.id, address, known_address_days)
        ):
            hasher.verify(None, password)
            return LoginAttempt(None, user.id, refused_by_lock=True)
        matches = hasher.verify(user.password_hash if user else None, password)
        if user is None or not matches or not user.is_active:
            if user is None:
                return LoginAttempt(None)
            return LoginAttempt(None, user.id, lock_seconds=lockout.failed(user.id))
        if hasher.needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
    user.last_login_at = _now()
    lockout.succeeded(user.id)
    return LoginAttempt(user, user.id)


def _known_address(session: Session, user_id: uuid.UUID, address: str | None, days: int) -> bool:
    if not address or not days:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:  # a unix socket's peer, say: no address to know
        return False
    return audit.succeeded_from(
        session,
        actor_id=user_id,
        action="auth.login",
        address=address,
        since=_now() - timedelta(days=days),
    )


def email_domain(email: str) -> str:
    """What a failed login may record of the address: its domain, never the address."""
    return email.rpartition("@")[2].strip().lower()[:255] or "-"


def change_password(
    *,
    session: Session,
    hasher: PasswordHasher,
    user: User,
    family_id: uuid.UUID,
    current_password: str,
    new_password: str,
    cache: tokens.FamilyCache,
    context: AuditContext,
) -> None:
    """Set a new password and end every other session of the user."""
    if not hasher.verify(user.password_hash, current_password):
        raise InvalidInput(
            "The current password is wrong.",
            errors=[{"field": "current_password", "message": "Does not match."}],
        )
    _check_policy(new_password, user.email, field="new_password")
    user.password_hash = hasher.hash(new_password)
    tokens.revoke_user(
        session=session, user_id=user.id, reason="password_change", cache=cache, keep=family_id
    )
    audit.record(
        session=session,
        context=context,
        action="auth.password_change",
        target_type="user",
        target_id=user.id,
    )


def delete_account(
    *,
    session: Session,
    hasher: PasswordHasher,
    user: User,
    password: str,
    cache: tokens.FamilyCache,
    context: AuditContext,
) -> None:
    """Delete the caller's own account after checking the password."""
    _serialize_admin_changes(session)
    session.refresh(user)  # as it is now that no admin change runs beside us
    if not hasher.verify(user.password_hash, password):
        raise InvalidInput(
            "The password is wrong.",
            errors=[{"field": "password", "message": "Does not match."}],
        )
    _delete(session=session, user=user, cache=cache, context=context, action="account.delete")


def _delete(
    *, session: Session, user: User, cache: tokens.FamilyCache, context: AuditContext, action: str
) -> None:
    if user.role == Role.ADMIN and user.is_active:
        _require_another_admin(session, user.id)
    tokens.revoke_user(session=session, user_id=user.id, reason="deleted", cache=cache)
    audit.record(
        session=session,
        context=context,
        action=action,
        target_type="user",
        target_id=user.id,
        meta={"email_domain": email_domain(user.email)},
    )
    session.delete(user)


# Any 64-bit number unique to this purpose: the key of the advisory lock below.
_ADMIN_CHANGES_LOCK = 0x6E65787573_61646D  # "nexus" "adm"


def _serialize_admin_changes(session: Session) -> None:
    """Take the transaction-scoped lock that every change able to remove an admin takes.

    Taken before any row lock, so such changes run one at a time: two admins
    demoting each other at once cannot both succeed, nor deadlock (row locks
    taken in opposite orders would).
    """
    session.execute(select(func.pg_advisory_xact_lock(_ADMIN_CHANGES_LOCK)))


def _require_another_admin(session: Session, user_id: uuid.UUID) -> None:
    """403 unless an active admin other than ``user_id`` remains.

    Callers hold ``_serialize_admin_changes``, so the count cannot change
    under them.
    """
    admins = session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))
    ).all()
    if not [admin for admin in admins if admin != user_id]:
        raise LastAdmin("This is the last active admin; make another admin first.")


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound("No such user.")
    return user


@dataclass(frozen=True)
class UserFilter:
    role: str | None = None
    is_active: bool | None = None
    email_prefix: str | None = None


# Oldest first: the order admins page through the member list.
USERS_KEYSET = Keyset((User.created_at, User.id))


def list_users(
    *, session: Session, filters: UserFilter, after: tuple[Any, ...] | None, limit: int
) -> list[User]:
    """Users matching ``filters``, after the key ``after`` (``USERS_KEYSET``)."""
    query = select(User)
    if filters.role is not None:
        query = query.where(User.role == filters.role)
    if filters.is_active is not None:
        query = query.where(User.is_active.is_(filters.is_active))
    if filters.email_prefix is not None:
        prefix = (
            emails.prefix_key(filters.email_prefix)
            .replace("\\", "\\\\")
            .replace("%", r"\%")
            .replace("_", r"\_")
        )
        query = query.where(User.email_key.like(prefix + "%", escape="\\"))
    return list(session.scalars(USERS_KEYSET.page(query, after, limit)))


def update_user(
    *,
    session: Session,
    user_id: uuid.UUID,
    role: str | None,
    is_active: bool | None,
    cache: tokens.FamilyCache,
    context: AuditContext,
) -> User:
    """Change a user's role or activation; the last active admin stays one."""
    if role == Role.MEMBER or is_active is False:
        _serialize_admin_changes(session)
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise UserNotFound("No such user.")
    loses_admin = (
        user.role == Role.ADMIN
        and user.is_active
        and ((role is not None and role != Role.ADMIN) or is_active is False)
    )
    if loses_admin:
        _require_another_admin(session, user.id)
    changes: dict[str, Any] = {}
    if role is not None and role != user.role:
        changes["role"] = {"from": user.role, "to": role}
        user.role = role
        tokens.forget_user(session=session, user_id=user.id, cache=cache)
        audit.record(
            session=session,
            context=context,
            action="user.role_change",
            target_type="user",
            target_id=user.id,
            meta=changes["role"],
        )
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        meta = {"from": not is_active, "to": is_active}
        if not is_active:
            tokens.revoke_user(session=session, user_id=user.id, reason="deactivated", cache=cache)
        else:
            tokens.forget_user(session=session, user_id=user.id, cache=cache)
        audit.record(
            session=session,
            context=context,
            action="user.activation_change",
            target_type="user",
            target_id=user.id,
            meta=meta,
        )
    session.flush()
    return user


def delete_user(
    *, session: Session, user_id: uuid.UUID, cache: tokens.FamilyCache, context: AuditContext
) -> None:
    _serialize_admin_changes(session)
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise UserNotFound("No such user.")
    _delete(session=session, user=user, cache=cache, context=context, action="user.delete")


def ensure_admin(
    *,
    session: Session,
    hasher: PasswordHasher,
    email: str,
    password: str,
    cache: tokens.FamilyCache,
    context: AuditContext,
) -> tuple[User, bool]:
    """Create an admin, or promote (and re-activate) an existing user; ``True`` if created."""
    user = find_by_email(session, email)
    if user is None:
        _check_policy(password, email)
        user = User(email=email.strip(), password_hash=hasher.hash(password), role=Role.ADMIN)
        session.add(user)
        session.flush()
        events.publish(session, UserCreated(user_id=user.id, email=user.email, role=user.role))
        audit.record(
            session=session,
            context=context,
            action="user.create_admin",
            target_type="user",
            target_id=user.id,
        )
        return user, True
    if user.role != Role.ADMIN or not user.is_active:
        audit.record(
            session=session,
            context=context,
            action="user.role_change",
            target_type="user",
            target_id=user.id,
            meta={"from": user.role, "to": Role.ADMIN.value, "activated": not user.is_active},
        )
        user.role = Role.ADMIN
        user.is_active = True
        tokens.forget_user(session=session, user_id=user.id, cache=cache)
    return user, False
