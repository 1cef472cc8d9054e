"""HTTP endpoints of libraries: libraries and members, media and fragments, search."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from flask import Blueprint, Response

from nexus.accounts import auth
from nexus.accounts.errors import E_LAST_ADMIN_FORBIDDEN
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.errors import ApiError, ErrorCode
from nexus.api.pagination import keyset_page
from nexus.api.request_context import body_limit
from nexus.api.validation import validate
from nexus.domain import domain_settings
from nexus.infrastructure.database import get_session, transaction
from nexus.libraries import ingest, media, search, services
from nexus.libraries.errors import (
    E_DEFAULT_LIBRARY_FORBIDDEN,
    E_LIBRARY_NOT_FOUND,
    E_MEDIA_NOT_FOUND,
)
from nexus.libraries.schemas import (
    ArticleIn,
    FileIn,
    FragmentOut,
    FragmentQuery,
    HitMedia,
    HitOut,
    LibraryIn,
    LibraryOut,
    LibraryQuery,
    MediaOut,
    MemberIn,
    MemberOut,
    MemberPatchIn,
    ReprocessOut,
    SearchQuery,
    UploadOut,
)
from nexus.libraries.settings import LibrariesSettings

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


def _media(view: media.MediaView) -> MediaOut:
    return MediaOut.model_validate(view, from_attributes=True)


MEDIA_ID = "$response.body#/data/media/id"
JOB_LINK = {"GetJob": ("jobs.get_job", {"job_id": "$response.body#/data/job_id"})}
ACCEPTED = ", ".join(sorted(ingest.FORMATS))


def _upload_limit() -> int:
    return domain_settings(LibrariesSettings).max_upload_bytes


@bp.post("/libraries/<uuid:library_id>/media")
@responds(
    202,
    UploadOut,
    description="Stored; the ingestion job (job_id) turns it into fragments.",
    links={**JOB_LINK, "GetMedia": ("libraries.get_media", {"media_id": MEDIA_ID})},
    codes=(E_LIBRARY_NOT_FOUND,),
)
@responds(200, UploadOut, description="This library holds the same content already; job_id null.")
@auth.require_auth
@body_limit(_upload_limit)
@validate(body=ArticleIn, form=FileIn, field_codes={"title": ErrorCode.E_NAME_INVALID})
def upload_media(library_id: uuid.UUID, body: ArticleIn | FileIn) -> Response:
    """Add an article (JSON) or a file (multipart) to a library; it is ingested in the background.

    Any member may upload. Files: .html, .htm, .xhtml, .txt, .md, .markdown (web_article) or
    .epub (epub), UTF-8 text, up to NEXUS_MAX_UPLOAD_BYTES (10 MiB by default).
    """
    article = _article(body)
    session = get_session()
    with transaction(session):
        view, job_id = media.upload(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            article=article,
            context=auth.audit_context(),
        )
    return data(UploadOut(media=_media(view), job_id=job_id), status=200 if job_id is None else 202)


def _article(body: ArticleIn | FileIn) -> media.Upload:
    url = str(body.canonical_source_url) if body.canonical_source_url is not None else None
    if isinstance(body, ArticleIn):
        html, text = body.html, body.text
        content_type = "text/html" if html is not None else "text/plain"
        content = (html if html is not None else text or "").encode("utf-8")
        return media.Upload(body.title, content, content_type, canonical_source_url=url)
    # A client may send a path (old browsers did); only its last part is the name.
    filename = PurePosixPath(body.file.filename.replace("\\", "/")).name.replace("\x00", "")[:255]
    suffix = PurePosixPath(filename.lower()).suffix
    stored_as = ingest.FORMATS.get(suffix)
    if stored_as is None:
        raise ApiError(
            ErrorCode.E_UNSUPPORTED_MEDIA_TYPE,
            f"Files named {suffix or 'without an extension'} are not accepted; "
            f"upload one of: {ACCEPTED}.",
            errors=[{"field": "file", "message": f"The accepted types are {ACCEPTED}."}],
        )
    if not body.file.content:
        raise ApiError(
            ErrorCode.E_INVALID_REQUEST,
            "The file is empty.",
            errors=[{"field": "file", "message": "The file is empty."}],
        )
    title = body.title or " ".join(PurePosixPath(filename).stem.split()) or filename
    return media.Upload(title[:300], body.file.content, stored_as, filename, url)


@bp.get("/media/<uuid:media_id>")
@responds(200, MediaOut, codes=(E_MEDIA_NOT_FOUND,))
@auth.require_auth
def get_media(media_id: uuid.UUID) -> Response:
    """A media the caller can read (one of their libraries holds it), with its processing status."""
    view = media.get_media(get_session(), viewer=auth.current().id, media_id=media_id)
    return data(_media(view))


@bp.get("/media/<uuid:media_id>/fragments")
@responds(200, FragmentOut, envelope="page", codes=(E_MEDIA_NOT_FOUND,))
@auth.require_auth
@validate(query=FragmentQuery)
def list_fragments(media_id: uuid.UUID, query: FragmentQuery) -> Response:
    """The media's fragments in reading order (none until it is ready_for_reading)."""
    viewer = auth.current().id
    return keyset_page(
        query,
        name=f"fragments:{media_id}",
        keyset=media.FRAGMENTS_KEYSET,
        fetch=lambda after, limit: media.list_fragments(
            get_session(), viewer=viewer, media_id=media_id, after=after, limit=limit
        ),
        render=lambda view: FragmentOut.model_validate(view, from_attributes=True),
    )


@bp.post("/libraries/<uuid:library_id>/media/<uuid:media_id>")
@responds(
    201,
    MediaOut,
    description="Added to the library.",
    codes=(E_LIBRARY_NOT_FOUND, E_MEDIA_NOT_FOUND),
)
@responds(200, MediaOut, description="The library holds it already.")
@auth.require_auth
def add_media(library_id: uuid.UUID, media_id: uuid.UUID) -> Response:
    """Put media the caller can read into one of their libraries (any member)."""
    session = get_session()
    with transaction(session):
        view, added = media.add_to_library(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            media_id=media_id,
            context=auth.audit_context(),
        )
    return data(_media(view), status=201 if added else 200)


@bp.delete("/libraries/<uuid:library_id>/media/<uuid:media_id>")
@responds(204, codes=(E_LIBRARY_NOT_FOUND, E_MEDIA_NOT_FOUND, ErrorCode.E_FORBIDDEN))
@auth.require_auth
def remove_media(library_id: uuid.UUID, media_id: uuid.UUID) -> Response:
    """Take media out of a library (its admins); media no library holds any more is deleted."""
    session = get_session()
    with transaction(session):
        media.remove_from_library(
            session,
            viewer=auth.current().id,
            library_id=library_id,
            media_id=media_id,
            context=auth.audit_context(),
        )
    return Response(status=204)


@bp.post("/media/<uuid:media_id>/reprocess")
@responds(202, ReprocessOut, links=JOB_LINK, codes=(E_MEDIA_NOT_FOUND, ErrorCode.E_FORBIDDEN))
@auth.require_auth
def reprocess_media(media_id: uuid.UUID) -> Response:
    """Ingest the stored original again (admins of a library that holds it)."""
    session = get_session()
    with transaction(session):
        view, job_id = media.reprocess(
            session, viewer=auth.current().id, media_id=media_id, context=auth.audit_context()
        )
    return data(ReprocessOut(media=_media(view), job_id=job_id), status=202)


@bp.get("/search")
@responds(200, HitOut, envelope="page", codes=(E_LIBRARY_NOT_FOUND,))
@auth.require_auth
@validate(query=SearchQuery)
def search_fragments(query: SearchQuery) -> Response:
    """Full-text search over everything the caller can read, best match first."""
    viewer = auth.current().id
    return keyset_page(
        query,
        name="search",
        keyset=search.HIT_KEY,
        fetch=lambda after, limit: search.search(
            get_session(),
            viewer=viewer,
            text=query.q,
            library_id=query.library_id,
            after=after,
            limit=limit,
        ),
        render=lambda hit: HitOut(
            media=HitMedia(id=hit.media_id, title=hit.title, kind=hit.kind),
            fragment_idx=hit.fragment_idx,
            snippet=hit.snippet,
            rank=hit.rank,
        ),
    )
