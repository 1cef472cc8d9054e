"""Ingesting articles: the libraries.ingest job against the bare work, side by side.

    .venv/bin/python bench/ingest.py [--rounds 3] [--sizes 5,50,500,5000]

Needs DATABASE_URL (``make dev``'s PostgreSQL: ``set -a; . ./.env``; a
``make dev`` running writes it to data/dev/services.env). For each article
size (in KB; realistic HTML: headings, paragraphs with links and emphasis,
lists), each round runs, in alternating order so machine noise hits both
alike:

- bare: ``ingest.extract`` (nh3 sanitizing, splitting into fragments), no
  database;
- job: the ``libraries.ingest`` job's function on a stored media (claim,
  read the original, extract, replace the fragments, mark it ready), each
  step committed, as a worker runs it (the worker's own fork and bookkeeping
  are measured by bench/job_throughput.py).

Reports per size the median time of each side, fragments/s, and the job's
database share: (job - bare) / job. Everything it creates is deleted.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from sqlalchemy import delete

from nexus.accounts.models import User
from nexus.app import create_app
from nexus.config import load_settings
from nexus.infrastructure.database import get_database
from nexus.libraries import ingest
from nexus.libraries.jobs import ingest as ingest_job
from nexus.libraries.models import Library, LibraryMedia, Media, MediaOriginal

PARAGRAPH = (
    "Reading is a conversation. <a href='https://example.org/{n}'>All good books</a> are "
    "<em>alike</em> in that they are truer than if they had really happened, and after you "
    "are finished reading one you will feel that all that happened to you and afterwards "
    "it all belongs to you: the good and the bad, the ecstasy, the remorse and sorrow. "
)


def article(kilobytes: int) -> bytes:
    """Realistic HTML of about ``kilobytes`` KB."""
    parts: list[str] = []
    size = 0
    n = 0
    while size < kilobytes * 1024:
        if n % 12 == 0:
            block = f"<h2>Chapter {n // 12}</h2>"
        elif n % 7 == 0:
            block = "<ul>" + "".join(f"<li>Point {n}.{i}</li>" for i in range(4)) + "</ul>"
        else:
            block = f"<p>{PARAGRAPH.format(n=n) * 2}</p>"
        parts.append(block)
        size += len(block)
        n += 1
    return ("<article>" + "".join(parts) + "</article>").encode()


def bare_round(content: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    pieces = ingest.extract(content, "text/html")
    return time.perf_counter() - started, len(pieces)


def job_round(app: object, library_id: uuid.UUID, owner: uuid.UUID, content: bytes) -> float:
    with app.app_context():  # type: ignore[attr-defined]
        sessions = get_database().sessionmaker
        with sessions() as session, session.begin():
            media = Media(kind="web_article", title="bench", created_by=owner)
            session.add(media)
            session.flush()
            session.add(
                MediaOriginal(
                    media_id=media.id, content_type="text/html", size=len(content),
                    sha256="0" * 64, content=content,
                )
            )  # fmt: skip
            session.add(LibraryMedia(library_id=library_id, media_id=media.id))
            media_id = media.id
    with app.app_context():  # type: ignore[attr-defined]
        started = time.perf_counter()
        result = ingest_job(str(media_id))
        elapsed = time.perf_counter() - started
    assert result["status"] == "ready_for_reading", result  # noqa: S101
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="5,50,500,5000", help="article sizes in KB")
    args = parser.parse_args()
    app = create_app(load_settings())
    owner = uuid.uuid4()
    with app.app_context(), get_database().sessionmaker() as session, session.begin():
        session.add(User(id=owner, email=f"bench-{owner}@example.com", password_hash="!"))  # noqa: S106 - matches no password
        session.flush()
        library = Library(owner_user_id=owner, name="bench")
        session.add(library)
        session.flush()
        library_id = library.id
    print(f"{'size':>8} {'bare':>9} {'job':>9} {'fragments':>9} {'bare frag/s':>11} "
          f"{'job frag/s':>10} {'db share':>8}")  # fmt: skip
    try:
        for kilobytes in (int(size) for size in args.sizes.split(",")):
            content = article(kilobytes)
            times: dict[str, list[float]] = {"bare": [], "job": []}
            fragments = 0
            for round_number in range(args.rounds):
                order = ["bare", "job"] if round_number % 2 == 0 else ["job", "bare"]
                for side in order:
                    if side == "bare":
                        seconds, fragments = bare_round(content)
                    else:
                        seconds = job_round(app, library_id, owner, content)
                    times[side].append(seconds)
            bare, job = statistics.median(times["bare"]), statistics.median(times["job"])
            print(
                f"{kilobytes:>6}KB {bare * 1000:>7.1f}ms {job * 1000:>7.1f}ms {fragments:>9} "
                f"{fragments / bare:>11.0f} {fragments / job:>10.0f} {(job - bare) / job:>8.0%}"
            )
    finally:
        with app.app_context(), get_database().sessionmaker() as session, session.begin():
            media_ids = session.scalars(
                LibraryMedia.__table__.select()
                .with_only_columns(LibraryMedia.media_id)
                .where(LibraryMedia.library_id == library_id)
            ).all()
            session.execute(delete(Media).where(Media.id.in_(media_ids)))
            session.execute(delete(User).where(User.id == owner))


if __name__ == "__main__":
    main()
