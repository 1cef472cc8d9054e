"""Proving addresses and recovering passwords: tokens in mailed links, sent by the outbox.

Every mail here is queued with ``nexus.mail.services.queue_email`` in the
transaction that has its reason (registration, a change of address, a
reset asked for): a rollback sends nothing. A token is derived from its
row's id and the secret key, and only its SHA-256 is stored
(``nexus.mail.tokens``); it works once, until it expires. Nothing here
logs an address or a token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nexus.accounts import emails
from nexus.accounts import tokens as families
from nexus.accounts.errors import EmailTaken, TokenInvalid
from nexus.accounts.models import EmailToken, TokenPurpose, User
from nexus.accounts.passwords import PasswordHasher, policy_problems
from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.config import Settings
from nexus.errors import InvalidInput
from nexus.mail import services as mail
from nexus.mail.tokens import token_for, token_hash

VERIFY_PATH = "/verify-email"
RESET_PATH = "/reset-password"


def _now() -> datetime:
    return datetime.now(UTC)


def _secret(settings: Settings) -> str:
    return settings.secret_key.get_secret_value() if settings.secret_key else ""


def _issue(
    session: Session,
    settings: Settings,
    *,
    user: User,
    purpose: TokenPurpose,
    email: str,
    lifetime: timedelta,
) -> uuid.UUID:
    token_id = uuid.uuid4()
    session.add(
        EmailToken(
            id=token_id,
            user_id=user.id,
            purpose=purpose,
            email=email,
            token_sha256=token_hash(token_for(token_id, _secret(settings))),
            expires_at=_now() + lifetime,
        )
    )
    session.flush()
    return token_id


def send_verification(
    session: Session, settings: Settings, *, user: User, email: str | None = None
) -> None:
    """Mail a link proving ``email`` (default: the account's own address) belongs to ``user``."""
    address = email or user.email
    token_id = _issue(
        session, settings, user=user, purpose=TokenPurpose.VERIFY_EMAIL, email=address,
        lifetime=timedelta(hours=settings.email_verification_hours),
    )  # fmt: skip
    mail.queue_email(
        session,
        kind="verify_email" if email is None else "change_email",
        to_address=address,
        user_id=user.id,
        token_id=token_id,
        link_path=VERIFY_PATH,
    )


def verify_email(session: Session, *, token: str, context: AuditContext) -> User:
    """Follow a verification link: the address is proven (and, for a change, now the account's)."""
    row = _redeem(session, token, TokenPurpose.VERIFY_EMAIL)
    user = session.get(User, row.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise TokenInvalid("This link is not valid; ask for a new one.")
    old_address = user.email
    if row.email != user.email:
        if session.scalar(
            select(User.id).where(User.email_key == emails.key(row.email), User.id != user.id)
        ):
            raise EmailTaken("Another account uses this address now.")
        user.email = row.email
        mail.queue_email(session, kind="email_changed", to_address=old_address, user_id=user.id)
        audit.record(
            session=session, context=context.as_actor(user.id, user.role),
            action="auth.email_changed", target_type="user", target_id=user.id,
        )  # fmt: skip
    user.email_verified_at = _now()
    audit.record(
        session=session, context=context.as_actor(user.id, user.role),
        action="auth.email_verified", target_type="user", target_id=user.id,
    )  # fmt: skip
    session.flush()
    return user


def request_email_change(
    session: Session,
    settings: Settings,
    *,
    user: User,
    hasher: PasswordHasher,
    new_email: str,
    password: str,
    context: AuditContext,
) -> None:
    """Mail a link to ``new_email``; the account moves to it only when the link is followed."""
    if not hasher.verify(user.password_hash, password):
        raise InvalidInput(
            "The password is wrong.",
            errors=[{"field": "password", "message": "Does not match."}],
        )
    if session.scalar(select(User.id).where(User.email_key == emails.key(new_email))):
        raise EmailTaken("An account with this address exists.")
    send_verification(session, settings, user=user, email=new_email)
    audit.record(
        session=session, context=context, action="auth.email_change_requested",
        target_type="user", target_id=user.id,
    )  # fmt: skip


def forgot_password(
    session: Session, settings: Settings, *, email: str, context: AuditContext
) -> bool:
    """Mail a reset link if an active account has this address; whether one was mailed."""
    user = session.scalar(select(User).where(User.email_key == emails.key(email)))
    if user is None or not user.is_active:
        return False
    token_id = _issue(
        session, settings, user=user, purpose=TokenPurpose.RESET_PASSWORD, email=user.email,
        lifetime=timedelta(minutes=settings.password_reset_minutes),
    )  # fmt: skip
    mail.queue_email(
        session, kind="reset_password", to_address=user.email, user_id=user.id,
        token_id=token_id, link_path=RESET_PATH,
    )  # fmt: skip
    audit.record(
        session=session, context=context, action="auth.password_reset_requested",
        target_type="user", target_id=user.id,
    )  # fmt: skip
    return True


def reset_password(
    session: Session,
    *,
    token: str,
    new_password: str,
    hasher: PasswordHasher,
    cache: families.FamilyCache,
    context: AuditContext,
) -> User:
    """Set a new password with a reset link; every login of the user ends, and they are told."""
    row = _redeem(session, token, TokenPurpose.RESET_PASSWORD)
    user = session.get(User, row.user_id, with_for_update=True)
    if user is None or not user.is_active:
        raise TokenInvalid("This link is not valid; ask for a new one.")
    problems = policy_problems(new_password, email=user.email)
    if problems:
        raise InvalidInput(
            "The password does not meet the policy.",
            errors=[{"field": "new_password", "message": message} for message in problems],
        )
    user.password_hash = hasher.hash(new_password)
    # Every other reset link of this account stops working too.
    session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user.id,
            EmailToken.purpose == TokenPurpose.RESET_PASSWORD,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=_now())
    )
    families.revoke_user(session=session, user_id=user.id, reason="password_reset", cache=cache)
    mail.queue_email(session, kind="password_changed", to_address=user.email, user_id=user.id)
    audit.record(
        session=session, context=context.as_actor(user.id, user.role),
        action="auth.password_reset", target_type="user", target_id=user.id,
    )  # fmt: skip
    return user


def _redeem(session: Session, token: str, purpose: TokenPurpose) -> EmailToken:
    """The token's row, marked used; ``TokenInvalid`` if unknown, used or expired."""
    row: EmailToken | None = session.scalar(
        update(EmailToken)
        .where(
            EmailToken.token_sha256 == token_hash(token),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > _now(),
        )
        .values(used_at=_now())
        .returning(EmailToken)
    )
    if row is None:
        raise TokenInvalid("This link is unknown, used or expired; ask for a new one.")
    return row
