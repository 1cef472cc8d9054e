"""HTTP endpoints of accounts: /api/v1/auth/* and the admin user and invite endpoints."""

from __future__ import annotations

import time
import uuid

from flask import Blueprint, Response

from nexus.accounts import auth, emails, services, tokens, verification
from nexus.accounts.errors import (
    E_AUTH_UNAVAILABLE,
    E_EMAIL_UNVERIFIED,
    E_LAST_ADMIN_FORBIDDEN,
    E_TOKEN_INVALID,
    EmailUnverified,
)
from nexus.accounts.schemas import (
    DeleteMeIn,
    EmailChangeIn,
    ForgotPasswordIn,
    InviteIn,
    InviteOut,
    LoginIn,
    PasswordChangeIn,
    RegisterIn,
    ResetPasswordIn,
    TokenIn,
    TokensOut,
    UserListQuery,
    UserOut,
    UserPatchIn,
)
from nexus.api import ratelimit
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.errors import ApiError, ErrorCode
from nexus.api.pagination import keyset_page
from nexus.api.ratelimit import rate_limit
from nexus.api.validation import validate
from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.config import current_settings
from nexus.infrastructure import metrics
from nexus.infrastructure.database import get_database, get_session, transaction

bp = Blueprint("auth", __name__)
admin_bp = Blueprint("admin_users", __name__)


def _tokens(pair: tokens.TokenPair) -> Response:
    return data(TokensOut(**pair.__dict__))


@bp.post("/register")
@responds(
    201,
    UserOut,
    codes=(ErrorCode.E_FORBIDDEN, ErrorCode.E_CONFLICT, E_AUTH_UNAVAILABLE),
    links={
        "UpdateUser": ("admin_users.update_user", {"user_id": "$response.body#/data/id"}),
        "DeleteUser": ("admin_users.delete_user", {"user_id": "$response.body#/data/id"}),
    },
)
@rate_limit("register", per="address")
@validate(body=RegisterIn)
def register(body: RegisterIn) -> Response:
    """Create a member account.

    In ``invite`` mode it needs an unused invite code; ``closed`` refuses all (403)."""
    session = get_session()
    with transaction(session):
        user = services.register(
            session=session,
            hasher=auth.password_hasher(),
            mode=current_settings().registration_mode,
            email=body.email,
            password=body.password,
            invite_code=body.invite_code,
            context=auth.audit_context(),
        )
        verification.send_verification(session, current_settings(), user=user)
    return data(UserOut.model_validate(user), status=201)


@bp.post("/login")
@responds(
    200, TokensOut, codes=(ErrorCode.E_UNAUTHENTICATED, E_AUTH_UNAVAILABLE, E_EMAIL_UNVERIFIED)
)
@rate_limit("login", per="address")
@validate(body=LoginIn)
def login(body: LoginIn) -> Response:
    """Sign in: an access token and a refresh token.

    A wrong address and a wrong password give the same 401."""
    session = get_session()
    context = auth.audit_context()
    settings = current_settings()
    with transaction(session):
        attempt = services.authenticate(
            session=session,
            hasher=auth.password_hasher(),
            email=body.email,
            password=body.password,
            lockout=auth.lockout(),
            address=context.ip,
            known_address_days=settings.login_known_address_days,
        )
        user = attempt.user
        if user is not None and settings.require_verified_email and not user.email_verified_at:
            raise EmailUnverified("Follow the link mailed to your address, then sign in.")
        if user is not None:
            pair = tokens.open_family(session=session, user=user, settings=settings)
            audit.record(
                session=session,
                context=context.as_actor(user.id, user.role),
                action="auth.login",
                target_type="user",
                target_id=user.id,
            )
    metrics.LOGINS.labels(
        result="success" if user else "locked" if attempt.refused_by_lock else "failure"
    ).inc()
    if user is None:
        _audit_failed_login(context, body.email, attempt)
        raise ApiError(ErrorCode.E_UNAUTHENTICATED, "The e-mail address or password is wrong.")
    return _tokens(pair)


def _audit_failed_login(context: AuditContext, email: str, attempt: services.LoginAttempt) -> None:
    """The failure (and a lock it started): for the operator, never for the client."""
    sessions = get_database().sessionmaker
    meta: dict[str, object] = {"email_domain": services.email_domain(email)}
    if attempt.refused_by_lock:
        meta["locked"] = True
    target_type = "user" if attempt.account_id else None
    audit.record_failure(
        sessions=sessions, context=context, action="auth.login", meta=meta,
        target_type=target_type, target_id=attempt.account_id,
    )  # fmt: skip
    if attempt.lock_seconds is not None:
        audit.record_failure(
            sessions=sessions, context=context, action="auth.lockout",
            meta={"seconds": attempt.lock_seconds},
            target_type=target_type, target_id=attempt.account_id,
        )  # fmt: skip


@bp.post("/verify")
@responds(200, UserOut, codes=(E_TOKEN_INVALID, ErrorCode.E_CONFLICT))
@validate(body=TokenIn)
def verify_email(body: TokenIn) -> Response:
    """Prove an address with the token of a mailed link (for a change of address: move to it)."""
    session = get_session()
    with transaction(session):
        user = verification.verify_email(session, token=body.token, context=auth.audit_context())
    return data(UserOut.model_validate(user))


@bp.post("/verify/resend")
@responds(202, description="A new link is on its way.", codes=(ErrorCode.E_CONFLICT,))
@rate_limit("verify_resend", per="user")
@auth.require_auth
def resend_verification() -> Response:
    """Mail a new verification link to the caller's address (409 if it is verified)."""
    session = get_session()
    with transaction(session):
        user = services.get_user(session, auth.current().id)
        if user.email_verified_at is not None:
            raise ApiError(ErrorCode.E_CONFLICT, "This address is verified already.")
        verification.send_verification(session, current_settings(), user=user)
    return Response(status=202)


@bp.post("/email")
@responds(
    202,
    description="A link is on its way to the new address; the account moves when it is followed.",
    codes=(ErrorCode.E_CONFLICT,),
)
@rate_limit("verify_resend", per="user")
@auth.require_auth
@validate(body=EmailChangeIn)
def change_email(body: EmailChangeIn) -> Response:
    """Move the account to a new address, once a link mailed to it is followed."""
    session = get_session()
    with transaction(session):
        user = services.get_user(session, auth.current().id)
        verification.request_email_change(
            session,
            current_settings(),
            user=user,
            hasher=auth.password_hasher(),
            new_email=str(body.new_email),
            password=body.password,
            context=auth.audit_context(),
        )
    return Response(status=202)


# A reset request answers no sooner than this, whatever happened: an account
# that exists costs a few inserts more than one that does not.
FORGOT_FLOOR_SECONDS = 0.05


@bp.post("/password/forgot")
@responds(202, description="If an active account has this address, a reset link is on its way.")
@ratelimit.silent
@validate(body=ForgotPasswordIn)
def forgot_password(body: ForgotPasswordIn) -> Response:
    """Ask for a password reset link. The answer is the same whether or not the account exists.

    Over its limits (per address and per account) it mails nothing, and says so to no one."""
    started = time.monotonic()
    context = auth.audit_context()
    within = ratelimit.allow("password_forgot", ratelimit.address_key()) and ratelimit.allow(
        "password_forgot_account", f"account:{emails.key(body.email)}"
    )
    if within:
        session = get_session()
        with transaction(session):
            verification.forgot_password(
                session, current_settings(), email=body.email, context=context
            )
        # The floor hides whether an account exists. Over the limits nothing
        # is looked up, so there is nothing to hide, and a flood of requests
        # must not hold a thread each for the floor.
        time.sleep(max(0.0, FORGOT_FLOOR_SECONDS - (time.monotonic() - started)))
    return Response(status=202)


@bp.post("/password/reset")
@responds(204, codes=(E_TOKEN_INVALID,))
@validate(body=ResetPasswordIn)
def reset_password(body: ResetPasswordIn) -> Response:
    """Choose a new password with a mailed link's token; every login of the account ends."""
    session = get_session()
    with transaction(session):
        verification.reset_password(
            session,
            token=body.token,
            new_password=body.new_password,
            hasher=auth.password_hasher(),
            cache=auth.family_cache(),
            context=auth.audit_context(),
        )
    return Response(status=204)


@bp.post("/refresh")
@responds(200, TokensOut)
@rate_limit("refresh", per="address")
@auth.require_refresh
def refresh() -> Response:
    """Exchange the refresh token (as the bearer) for a new pair.

    Each refresh token works once: using one twice revokes its login."""
    session = get_session()
    caller = auth.current()
    claims = auth.token_claims()
    try:
        with transaction(session):
            user = services.get_user(session, caller.id)
            pair = tokens.rotate(
                session=session,
                user=user,
                claims=claims,
                settings=current_settings(),
            )
    except tokens.RefreshReuseError as reuse:
        # The revocation must stick although this request fails: commit it
        # and its audit row on their own.
        with transaction(session):
            tokens.revoke_families(
                session=session,
                family_ids=[reuse.family_id],
                reason="reuse",
                cache=auth.family_cache(),
            )
            audit.record(
                session=session,
                context=auth.audit_context(),
                action="auth.refresh_reuse_detected",
                target_type="token_family",
                target_id=reuse.family_id,
            )
        raise ApiError(
            ErrorCode.E_UNAUTHENTICATED, "This refresh token was already used; sign in again."
        ) from None
    return _tokens(pair)


@bp.post("/logout")
@responds(204)
@auth.require_auth
def logout() -> Response:
    """Sign out: revoke this login's tokens."""
    session = get_session()
    caller = auth.current()
    with transaction(session):
        tokens.revoke_families(
            session=session,
            family_ids=[caller.family_id],
            reason="logout",
            cache=auth.family_cache(),
        )
        audit.record(
            session=session,
            context=auth.audit_context(),
            action="auth.logout",
            target_type="user",
            target_id=caller.id,
        )
    return Response(status=204)


@bp.get("/me")
@responds(200, UserOut)
@auth.require_auth
def me() -> Response:
    """The signed-in user."""
    return data(UserOut.model_validate(services.get_user(get_session(), auth.current().id)))


@bp.post("/password")
@responds(204)
@rate_limit("password_change", per="user")
@auth.require_auth
@validate(body=PasswordChangeIn)
def change_password(body: PasswordChangeIn) -> Response:
    """Change the password; the caller's other logins are signed out."""
    session = get_session()
    caller = auth.current()
    with transaction(session):
        services.change_password(
            session=session,
            hasher=auth.password_hasher(),
            user=services.get_user(session, caller.id),
            family_id=caller.family_id,
            current_password=body.current_password,
            new_password=body.new_password,
            cache=auth.family_cache(),
            context=auth.audit_context(),
        )
    return Response(status=204)


@bp.delete("/me")
@responds(204, codes=(E_LAST_ADMIN_FORBIDDEN,))
@auth.require_auth
@validate(body=DeleteMeIn)
def delete_me(body: DeleteMeIn) -> Response:
    """Delete the caller's own account (the password confirms it)."""
    session = get_session()
    caller = auth.current()
    refusals = auth.audit_refusals("account.delete", target_type="user", target_id=caller.id)
    with refusals, transaction(session):
        services.delete_account(
            session=session,
            hasher=auth.password_hasher(),
            user=services.get_user(session, caller.id),
            password=body.password,
            cache=auth.family_cache(),
            context=auth.audit_context(),
        )
    return Response(status=204)


@admin_bp.get("/users")
@responds(200, UserOut, envelope="page")
@auth.require_role("admin")
@validate(query=UserListQuery)
def list_users(query: UserListQuery) -> Response:
    """Users, newest first, filtered by role, activity or address prefix (admins)."""
    filters = services.UserFilter(query.role, query.is_active, query.email_prefix)
    return keyset_page(
        query,
        name="admin.users",
        keyset=services.USERS_KEYSET,
        fetch=lambda after, limit: services.list_users(
            session=get_session(), filters=filters, after=after, limit=limit
        ),
        render=UserOut.model_validate,
    )


@admin_bp.patch("/users/<uuid:user_id>")
@responds(200, UserOut, codes=(E_LAST_ADMIN_FORBIDDEN,))
@auth.require_role("admin")
@validate(body=UserPatchIn)
def update_user(user_id: uuid.UUID, body: UserPatchIn) -> Response:
    """Change a user's role or activity (admins); the last admin is protected."""
    session = get_session()
    with (
        auth.audit_refusals("user.update", target_type="user", target_id=user_id),
        transaction(session),
    ):
        user = services.update_user(
            session=session,
            user_id=user_id,
            role=body.role,
            is_active=body.is_active,
            cache=auth.family_cache(),
            context=auth.audit_context(),
        )
    return data(UserOut.model_validate(user))


@admin_bp.delete("/users/<uuid:user_id>")
@responds(204, codes=(E_LAST_ADMIN_FORBIDDEN,))
@auth.require_role("admin")
def delete_user(user_id: uuid.UUID) -> Response:
    """Delete a user (admins); the last admin is protected."""
    session = get_session()
    with (
        auth.audit_refusals("user.delete", target_type="user", target_id=user_id),
        transaction(session),
    ):
        services.delete_user(
            session=session,
            user_id=user_id,
            cache=auth.family_cache(),
            context=auth.audit_context(),
        )
    return Response(status=204)


@admin_bp.post("/invites")
@responds(201, InviteOut)
@auth.require_role("admin")
@validate(body=InviteIn)
def create_invite(body: InviteIn) -> Response:
    """A single-use invite code for ``invite`` registration mode (admins)."""
    session = get_session()
    with transaction(session):
        code, expires_at = services.create_invite(
            session=session,
            hours=body.expires_in_hours or current_settings().invite_hours,
            context=auth.audit_context(),
        )
    return data(InviteOut(code=code, expires_at=expires_at), status=201)
