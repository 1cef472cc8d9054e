"""HTTP endpoints of libraries: /api/v1/libraries and their members."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response

from nexus.accounts import auth
from nexus.accounts.errors import E_LAST_ADMIN_FORBIDDEN
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.errors import ErrorCode
from nexus.api.pagination import keyset_page
from nexus.api.validation import validate
from nexus.infrastructure.database import get_session, transaction
from nexus.libraries import services
from nexus.libraries.errors import E_DEFAULT_LIBRARY_FORBIDDEN, E_LIBRARY_NOT_FOUND
from nexus.libraries.schemas import (
    LibraryIn,
    LibraryOut,
    LibraryQuery,
    MemberIn,
    MemberOut,
    MemberPatchIn,
)

bp = Blueprint("libraries", __name__)
NAME_CODES = {"name": ErrorCode.E_NAME_INVALID}
LIBRARY_ID = "$response.body#/data/id"


def _out(view: services.LibraryView) -> LibraryOut:
    return LibraryOut.model_validate(view, from_attributes=True)


def _member(view: services.MemberView) -> MemberOut:
    return MemberOut.model_validate(view, from_attributes=True)


@bp.get("/libraries")
@responds(200, LibraryOut, envelope="page")
@auth.require_auth
@validate(query=LibraryQuery)
def list_libraries(query: LibraryQuery) -> Response:
    """The libraries the caller belongs to, oldest first."""
    viewer = auth.current().id
    return keyset_page(
        query,
        name="libraries",
        keyset=services.LIBRARIES_KEYSET,
        fetch=lambda after, limit: services.list_libraries(
            get_session(), viewer=viewer, after=after, limit=limit
        ),
        render=_out,
    )


@bp.post("/libraries")
@responds(
    201,
    LibraryOut,
    links={
        "GetLibrary": ("libraries.get_library", {"library_id": LIBRARY_ID}),
        "ListMembers": ("libraries.list_members", {"library_id": LIBRARY_ID}),
    },
)
@auth.require_auth
@validate(body=LibraryIn, field_codes=NAME_CODES)
def create_library(body: LibraryIn) -> Response:
    """Make a library; the caller is its admin."""
    session = get_session()
    with transaction(session):
        view = services.create_library(
            session, viewer=auth.current().id, name=body.name, context=auth.audit_context()
        )
    return data(_out(view), status=201)


@bp.get("/libraries/<uuid:library_id>")
@responds(200, LibraryOut, codes=(E_LIBRARY_NOT_FOUND,))
@auth.require_auth
def get_library(library_id: uuid.UUID) -> Response:
    """One of the caller's libraries; anyone else's is a 404."""
    view = services.get_library(get_session(), viewer=auth.current().id, library_id=library_id)
    return data(_out(view))


@bp.patch("/libraries/<uuid:library_id>")
@responds(
    200,
    LibraryOut,
    codes=(E_LIBRARY_NOT_FOUND, ErrorCode.E_FORBIDDEN, E_DEFAULT_LIBRARY_FORBIDDEN),
)
@auth.require_auth
@validate(body=LibraryIn, field_codes=NAME_CODES)
def rename_library(library_id: uuid.UUID, body: LibraryIn) -> Response:
    """Rename a library (its admins; never the default one)."""
    session = get_session()
    with transaction(session):
        view = services.rename_library(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            name=body.name,
            context=auth.audit_context(),
        )
    return data(_out(view))


@bp.delete("/libraries/<uuid:library_id>")
@responds(204, codes=(E_LIBRARY_NOT_FOUND, ErrorCode.E_FORBIDDEN, E_DEFAULT_LIBRARY_FORBIDDEN))
@auth.require_auth
def delete_library(library_id: uuid.UUID) -> Response:
    """Delete a library and its memberships (its admins; never the default one)."""
    session = get_session()
    with transaction(session):
        services.delete_library(
            session, viewer=auth.current().id, library_id=library_id, context=auth.audit_context()
        )
    return Response(status=204)


@bp.get("/libraries/<uuid:library_id>/members")
@responds(200, MemberOut, envelope="list", codes=(E_LIBRARY_NOT_FOUND,))
@auth.require_auth
def list_members(library_id: uuid.UUID) -> Response:
    """Who is in the library, and as what (any member may look)."""
    members = services.list_members(get_session(), viewer=auth.current().id, library_id=library_id)
    return data([_member(member) for member in members])


@bp.post("/libraries/<uuid:library_id>/members")
@responds(
    201,
    MemberOut,
    codes=(E_LIBRARY_NOT_FOUND, ErrorCode.E_FORBIDDEN, ErrorCode.E_NOT_FOUND, ErrorCode.E_CONFLICT),
)
@auth.require_auth
@validate(body=MemberIn)
def add_member(library_id: uuid.UUID, body: MemberIn) -> Response:
    """Add an account by its e-mail address (its admins). No such account: 404."""
    session = get_session()
    with transaction(session):
        member = services.add_member(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            email=body.email,
            role=body.role,
            context=auth.audit_context(),
        )
    return data(_member(member), status=201)


@bp.patch("/libraries/<uuid:library_id>/members/<uuid:user_id>")
@responds(
    200,
    MemberOut,
    codes=(E_LIBRARY_NOT_FOUND, ErrorCode.E_FORBIDDEN, E_LAST_ADMIN_FORBIDDEN),
)
@auth.require_auth
@validate(body=MemberPatchIn)
def change_member_role(library_id: uuid.UUID, user_id: uuid.UUID, body: MemberPatchIn) -> Response:
    """Make a member an admin or an admin a member (its admins; one admin always stays)."""
    session = get_session()
    with transaction(session):
        member = services.change_member_role(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            user_id=user_id,
            role=body.role,
            context=auth.audit_context(),
        )
    return data(_member(member))


@bp.delete("/libraries/<uuid:library_id>/members/<uuid:user_id>")
@responds(204, codes=(E_LIBRARY_NOT_FOUND, ErrorCode.E_FORBIDDEN, E_LAST_ADMIN_FORBIDDEN))
@auth.require_auth
def remove_member(library_id: uuid.UUID, user_id: uuid.UUID) -> Response:
    """Remove a member (its admins, or members themselves; one admin always stays)."""
    session = get_session()
    with transaction(session):
        services.remove_member(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            user_id=user_id,
            context=auth.audit_context(),
        )
    return Response(status=204)
