"""Full-text search over the fragments a viewer can read: ranked, paged, with safe snippets.

PostgreSQL does the work: ``websearch_to_tsquery`` reads what a user types
(quotes, ``or``, ``-word``) and never fails on it; the GIN index over
``to_tsvector('english', canonical_text)`` finds the fragments, scoped to
the viewer's libraries (``media.readable_by``) in the same query; and
``ts_headline`` picks the snippet. The snippet's match markers are private
code points, so the text is HTML-escaped first and only then are the
markers turned into ``<mark>``: a snippet holds escaped text and ``<mark>``,
nothing else, whatever the article contained.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from nexus.libraries.media import readable_by
from nexus.libraries.models import SEARCH_CONFIG, Fragment, LibraryMedia, Media
from nexus.libraries.services import visible

# Unicode private-use code points: never meaningful in an article, and
# stripped from the text before ts_headline sees it.
_START, _STOP = "\ue000", "\ue001"
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=15, MaxFragments=2"


@dataclass(frozen=True)
class Hit:
    media_id: uuid.UUID
    title: str
    kind: str
    fragment_idx: int
    snippet: str
    rank: float
    fragment_id: uuid.UUID


class HitKey:
    """Best first: rank descending, then fragment id, so equal ranks page stably."""

    types: tuple[type, ...] = (float, uuid.UUID)

    def key(self, hit: Hit) -> tuple[Any, ...]:
        return (hit.rank, hit.fragment_id)


HIT_KEY = HitKey()


def search(
    session: Session,
    *,
    viewer: uuid.UUID,
    text: str,
    library_id: uuid.UUID | None,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[Hit]:
    """Fragments matching ``text`` that the viewer can read (in ``library_id`` if given)."""
    if library_id is not None:
        visible(session, viewer, library_id)  # someone else's library: 404, not "no hits"
    query = func.websearch_to_tsquery(SEARCH_CONFIG, text)
    vector = func.to_tsvector(SEARCH_CONFIG, Fragment.canonical_text)
    # float8: the cursor carries the rank, and a float4 would not survive
    # the round trip through JSON exactly.
    rank = cast(func.ts_rank_cd(vector, query), Float(precision=53))
    plain = func.replace(func.replace(Fragment.canonical_text, _START, ""), _STOP, "")
    statement = (
        select(
            Fragment.media_id,
            Media.title,
            Media.kind,
            Fragment.idx,
            func.ts_headline(SEARCH_CONFIG, plain, query, _HEADLINE),
            rank,
            Fragment.id,
        )
        .join(Media, Media.id == Fragment.media_id)
        .where(vector.op("@@")(query), readable_by(viewer, Fragment.media_id))
    )
    if library_id is not None:
        statement = statement.where(
            select(LibraryMedia.media_id)
            .where(LibraryMedia.library_id == library_id, LibraryMedia.media_id == Media.id)
            .exists()
        )
    if after is not None:
        after_rank, after_id = after
        statement = statement.where(
            (rank < after_rank) | ((rank == after_rank) & (Fragment.id > after_id))
        )
    rows = session.execute(statement.order_by(rank.desc(), Fragment.id).limit(limit)).all()
    return [
        Hit(
            media_id=media_id,
            title=title,
            kind=kind,
            fragment_idx=idx,
            snippet=_marked(headline),
            rank=score,
            fragment_id=fragment_id,
        )
        for media_id, title, kind, idx, headline, score, fragment_id in rows
    ]


def _marked(headline: str) -> str:
    escaped = html.escape(headline, quote=True)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")
