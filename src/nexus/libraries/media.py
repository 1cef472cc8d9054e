"""What media does: upload, read, add to and remove from libraries, reprocess, ingest.

Plain functions on a session, like ``services``. A media is readable by the
members of any library that holds it; every query here is scoped to the
viewer, so media they cannot read is as absent (``MediaNotFound``) as media
that does not exist. An upload stores the original bytes and enqueues
``libraries.ingest`` in the same transaction; the same content uploaded to
the same library again is the media already there (an advisory lock on
library and digest makes two racing uploads agree). :func:`ingest` is the
job's work: safe to run twice, and a file that cannot be read ends
``failed`` with its reason, never a stuck job.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nexus.audit import services as audit
from nexus.audit.services import AuditContext
from nexus.infrastructure.database import transaction
from nexus.infrastructure.keyset import Keyset
from nexus.infrastructure.logging import get_logger
from nexus.jobs import services as jobs
from nexus.libraries import ingest as extraction
from nexus.libraries.errors import MediaNotFound, NotLibraryAdmin
from nexus.libraries.models import (
    Fragment,
    LibraryMedia,
    LibraryRole,
    Media,
    MediaKind,
    MediaOriginal,
    Membership,
    ProcessingStatus,
)
from nexus.libraries.services import administered, visible

log = get_logger(__name__)
INGEST = "libraries.ingest"
# Statuses in which ingestion has nothing left to do.
INGESTED = frozenset(
    {ProcessingStatus.READY_FOR_READING, ProcessingStatus.READY, ProcessingStatus.FAILED}
)


@dataclass(frozen=True)
class Original:
    content_type: str
    filename: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class MediaView:
    id: uuid.UUID
    kind: str
    title: str
    canonical_source_url: str | None
    processing_status: str
    processing_error: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    original: Original | None


@dataclass(frozen=True)
class Upload:
    """An article or file to add: its bytes as stored, and what they are."""

    title: str
    content: bytes
    content_type: str
    filename: str | None = None
    canonical_source_url: str | None = None

    @property
    def kind(self) -> str:
        return MediaKind.EPUB if self.content_type == extraction.EPUB else MediaKind.WEB_ARTICLE


def readable_by(viewer: uuid.UUID, media_id: Any = Media.id) -> ColumnElement[bool]:
    """True for media some library of ``viewer``'s holds: the scope of every media query."""
    return exists().where(
        LibraryMedia.media_id == media_id,
        Membership.library_id == LibraryMedia.library_id,
        Membership.user_id == viewer,
    )


def get_media(session: Session, *, viewer: uuid.UUID, media_id: uuid.UUID) -> MediaView:
    media = _readable(session, viewer, media_id)
    return _view(session, media)


def upload(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    article: Upload,
    context: AuditContext,
) -> tuple[MediaView, uuid.UUID | None]:
    """Store ``article`` in the library and enqueue its ingestion: (media, job id).

    The same bytes already in this library: that media, and no job (``None``).
    """
    visible(session, viewer, library_id)
    digest = hashlib.sha256(article.content).hexdigest()
    # Two uploads of the same bytes to one library, at once: the second waits
    # here for the first to commit, then finds its media below.
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"{library_id}:{digest}", 0)))
    )
    existing = session.scalar(
        select(Media)
        .join(LibraryMedia, LibraryMedia.media_id == Media.id)
        .join(MediaOriginal, MediaOriginal.media_id == Media.id)
        .where(LibraryMedia.library_id == library_id, MediaOriginal.sha256 == digest)
        .limit(1)
    )
    if existing is not None:
        return _view(session, existing), None
    media = Media(
        kind=article.kind,
        title=article.title,
        canonical_source_url=article.canonical_source_url,
        created_by=viewer,
    )
    session.add(media)
    session.flush()
    session.add(
        MediaOriginal(
            media_id=media.id,
            content_type=article.content_type,
            filename=article.filename,
            size=len(article.content),
            sha256=digest,
            content=article.content,
        )
    )
    session.add(LibraryMedia(library_id=library_id, media_id=media.id))
    session.flush()
    job = jobs.enqueue(session, INGEST, media_id=str(media.id))
    audit.record(
        session=session, context=context, action="media.upload",
        target_type="media", target_id=media.id,
        meta={"library_id": str(library_id), "kind": article.kind, "size": len(article.content)},
    )  # fmt: skip
    session.refresh(media)
    return _view(session, media), job.id


def add_to_library(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    media_id: uuid.UUID,
    context: AuditContext,
) -> tuple[MediaView, bool]:
    """Put media the viewer can read into one of their libraries: (media, new there?)."""
    visible(session, viewer, library_id)
    media = _readable(session, viewer, media_id)
    added = session.execute(
        pg_insert(LibraryMedia)
        .values(library_id=library_id, media_id=media_id)
        .on_conflict_do_nothing()
        .returning(LibraryMedia.media_id)
    ).first()
    if added is not None:
        audit.record(
            session=session, context=context, action="media.add",
            target_type="media", target_id=media_id, meta={"library_id": str(library_id)},
        )  # fmt: skip
    return _view(session, media), added is not None


def remove_from_library(
    session: Session,
    *,
    viewer: uuid.UUID,
    library_id: uuid.UUID,
    media_id: uuid.UUID,
    context: AuditContext,
) -> None:
    """Take media out of a library (its admins). Media no library holds any more is deleted."""
    administered(session, viewer, library_id)
    removed = session.execute(
        delete(LibraryMedia)
        .where(LibraryMedia.library_id == library_id, LibraryMedia.media_id == media_id)
        .returning(LibraryMedia.media_id)
    ).first()
    if removed is None:
        raise MediaNotFound("No such media in this library.")
    # Nobody could read it again: its file and fragments go with it.
    orphaned = session.execute(
        delete(Media)
        .where(Media.id == media_id, ~exists().where(LibraryMedia.media_id == media_id))
        .returning(Media.id)
    ).first()
    audit.record(
        session=session, context=context, action="media.remove",
        target_type="media", target_id=media_id,
        meta={"library_id": str(library_id), "deleted": orphaned is not None},
    )  # fmt: skip


def reprocess(
    session: Session, *, viewer: uuid.UUID, media_id: uuid.UUID, context: AuditContext
) -> tuple[MediaView, uuid.UUID]:
    """Ingest the stored original again (admins of a library that holds it): (media, job id)."""
    media = _readable(session, viewer, media_id, lock=True)
    is_admin = session.scalar(
        select(
            exists().where(
                LibraryMedia.media_id == media_id,
                Membership.library_id == LibraryMedia.library_id,
                Membership.user_id == viewer,
                Membership.role == LibraryRole.ADMIN,
            )
        )
    )
    if not is_admin:
        raise NotLibraryAdmin("Only admins of a library that holds this media may reprocess it.")
    media.processing_status = ProcessingStatus.PENDING
    media.processing_error = None
    media.updated_at = func.now()
    session.flush()
    # A unique job type: an ingestion already waiting or running is the answer.
    job = jobs.enqueue(session, INGEST, media_id=str(media_id))
    audit.record(
        session=session, context=context, action="media.reprocess",
        target_type="media", target_id=media_id, meta={"job_id": str(job.id)},
    )  # fmt: skip
    session.refresh(media)
    return _view(session, media), job.id


@dataclass(frozen=True)
class FragmentView:
    idx: int
    canonical_text: str
    html_sanitized: str


# In reading order.
FRAGMENTS_KEYSET = Keyset((Fragment.idx,))


def list_fragments(
    session: Session,
    *,
    viewer: uuid.UUID,
    media_id: uuid.UUID,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[FragmentView]:
    _readable(session, viewer, media_id)
    query = select(Fragment.idx, Fragment.canonical_text, Fragment.html_sanitized).where(
        Fragment.media_id == media_id
    )
    rows = session.execute(FRAGMENTS_KEYSET.page(query, after, limit)).all()
    return [FragmentView(*row) for row in rows]


@dataclass(frozen=True)
class Ingested:
    """How one run of the ingestion job ended."""

    status: str
    fragments: int = 0
    error: str | None = None
    skipped: bool = False

    def as_result(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None and v is not False}


def ingest(session: Session, media_id: uuid.UUID, *, timed_out: type[BaseException]) -> Ingested:
    """The ingestion job's work: original -> fragments, in two short transactions.

    1. Claim: ``pending`` (or ``extracting``, left by a run that died) becomes
       ``extracting``; media already ingested (or deleted) is left alone.
    2. Write: the media's fragments are replaced, never added to, and the
       status set ``ready_for_reading`` in one transaction, so a re-run, or
       a run killed half-way, never leaves duplicates or half an article.
       The fragments are made while they are written (CPU here, indexing
       in PostgreSQL, at once). A file that cannot be read, or takes too
       long (``timed_out``), rolls that back and ends ``failed`` with a reason.

    PostgreSQL errors propagate, so the job's retries cover an outage.
    """
    claimed = _claim(session, media_id)
    if isinstance(claimed, Ingested):
        return claimed
    content_type, content = claimed
    started = time.perf_counter()
    try:
        count = _write(session, media_id, extraction.read(content, content_type))
    except (SQLAlchemyError, psycopg.Error):
        raise  # an outage: the job's retries are for this
    except extraction.ExtractionError as exc:
        reason = str(exc)
    except timed_out:
        reason = "Reading the file took too long; it may be malformed."
    except RecursionError:
        reason = "The file is nested too deeply to be read."
    except Exception as exc:  # pure code on the user's bytes: a retry would fail the same way
        log.exception("media.extract_crashed", media_id=str(media_id))
        reason = f"The file could not be read ({type(exc).__name__})."
    else:
        if count is None:
            return Ingested(status="deleted", skipped=True)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("media.ingested", media_id=str(media_id), fragments=count, ms=elapsed_ms)
        return Ingested(status=ProcessingStatus.READY_FOR_READING, fragments=count)
    return _fail(session, media_id, reason)


def _claim(session: Session, media_id: uuid.UUID) -> tuple[str, bytes] | Ingested:
    """Mark the media ``extracting`` and read its original, or say why there is nothing to do."""
    with transaction(session):
        media = _locked(session, media_id)
        if media is None:
            return Ingested(status="deleted", skipped=True)
        if media.processing_status in INGESTED:
            return Ingested(status=media.processing_status, skipped=True)
        media.processing_status = ProcessingStatus.EXTRACTING
        media.updated_at = func.now()
        original = session.execute(
            select(MediaOriginal.content_type, MediaOriginal.content).where(
                MediaOriginal.media_id == media_id
            )
        ).first()
    return (original[0], original[1]) if original is not None else ("", b"")


def _write(session: Session, media_id: uuid.UUID, pieces: Iterator[extraction.Piece]) -> int | None:
    """Replace the media's fragments with ``pieces`` and mark it ready, in one transaction.

    The pieces are made as they are written: PostgreSQL indexes each batch
    while the next is parsed. If making them fails, the transaction rolls
    back: the old fragments stay, and no half article is ever visible.
    ``None``: the media was deleted meanwhile.
    """
    with transaction(session):
        media = _locked(session, media_id)
        if media is None:
            return None
        session.execute(delete(Fragment).where(Fragment.media_id == media_id))
        count = _copy_fragments(session, media_id, pieces)
        media.processing_status = ProcessingStatus.READY_FOR_READING
        media.processing_error = None
        media.updated_at = func.now()
    return count


def _copy_fragments(
    session: Session, media_id: uuid.UUID, pieces: Iterator[extraction.Piece]
) -> int:
    """Write the fragments with COPY, in the session's transaction.

    A 5 MB article is ~10,000 rows: COPY streams them as they come, where
    even batched INSERTs cost several times as long (bench/ingest.py).
    """
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)  # noqa: S101 - the only driver Nexus uses
    with (
        driver.cursor() as cursor,
        cursor.copy(
            "COPY fragments (media_id, idx, canonical_text, html_sanitized) FROM STDIN"
        ) as copy,
    ):
        count = 0
        for idx, piece in enumerate(pieces):
            copy.write_row((media_id, idx, piece.canonical_text, piece.html_sanitized))
            count += 1
    return count


def _fail(session: Session, media_id: uuid.UUID, reason: str) -> Ingested:
    with transaction(session):
        session.execute(delete(Fragment).where(Fragment.media_id == media_id))
        session.execute(
            update(Media)
            .where(Media.id == media_id)
            .values(
                processing_status=ProcessingStatus.FAILED,
                processing_error=reason,
                updated_at=func.now(),
            )
        )
    log.info("media.ingest_failed", media_id=str(media_id), reason=reason)
    return Ingested(status=ProcessingStatus.FAILED, error=reason)


def _locked(session: Session, media_id: uuid.UUID) -> Media | None:
    # populate_existing: the session keeps objects across commits, and the
    # status must be read under the lock, not from before it.
    return session.scalar(
        select(Media)
        .where(Media.id == media_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _readable(
    session: Session, viewer: uuid.UUID, media_id: uuid.UUID, *, lock: bool = False
) -> Media:
    query = select(Media).where(Media.id == media_id, readable_by(viewer))
    if lock:
        query = query.with_for_update(of=Media)
    media = session.scalar(query)
    if media is None:
        raise MediaNotFound("No such media.")
    return media


def _view(session: Session, media: Media) -> MediaView:
    original = session.execute(
        select(
            MediaOriginal.content_type,
            MediaOriginal.filename,
            MediaOriginal.size,
            MediaOriginal.sha256,
        ).where(MediaOriginal.media_id == media.id)
    ).first()
    return MediaView(
        id=media.id,
        kind=media.kind,
        title=media.title,
        canonical_source_url=media.canonical_source_url,
        processing_status=media.processing_status,
        processing_error=media.processing_error,
        created_by=media.created_by,
        created_at=media.created_at,
        updated_at=media.updated_at,
        original=Original(*original) if original is not None else None,
    )
