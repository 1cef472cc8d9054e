"""EPUB files for tests: well-formed books in any spine order, and broken ones.

``epub()`` writes what the EPUB 3 specification asks for (the ``mimetype``
entry first and stored, ``META-INF/container.xml``, a package document with
metadata, manifest and spine, XHTML chapters in a folder of their own), as
Calibre and Sigil do, so a test reads a book the way a real one is laid out.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>"""


def chapter(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title><link rel='stylesheet' href='../style.css'/></head>"
        f"<body><section epub:type='chapter'><h1>{title}</h1>{body}</section></body></html>"
    )


def epub(
    chapters: Sequence[tuple[str, str]],
    *,
    spine: Sequence[str] | None = None,
    title: str = "A Test Book",
    non_linear: Sequence[str] = (),
    extra_manifest: str = "",
) -> bytes:
    """A book of ``(id, xhtml)`` chapters, read in ``spine`` order (default: as given)."""
    manifest = "".join(
        f'<item id="{cid}" href="text/{cid}.xhtml" media-type="application/xhtml+xml"/>'
        for cid, _ in chapters
    )
    order = spine if spine is not None else [cid for cid, _ in chapters]
    itemrefs = "".join(
        f'<itemref idref="{cid}" linear="{"no" if cid in non_linear else "yes"}"/>' for cid in order
    )
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:identifier id="id">urn:uuid:0000</dc:identifier><dc:title>{title}</dc:title>'
        "<dc:language>en</dc:language></metadata>"
        f"<manifest>{manifest}{extra_manifest}</manifest><spine>{itemrefs}</spine></package>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # stored, first
        book.writestr("META-INF/container.xml", CONTAINER)
        book.writestr("OEBPS/content.opf", opf)
        book.writestr("OEBPS/style.css", "p { margin: 0 }")
        for cid, xhtml in chapters:
            book.writestr(f"OEBPS/text/{cid}.xhtml", xhtml)
    return buffer.getvalue()


def zip_bomb(megabytes: int = 256) -> bytes:
    """A valid EPUB plus one entry of zeros that is ~250 KB packed and ``megabytes`` unpacked."""
    buffer = io.BytesIO(epub([("c1", chapter("One", "Fine."))]))
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as book,
        book.open("OEBPS/bomb.bin", "w", force_zip64=True) as entry,
    ):
        for _ in range(megabytes):
            entry.write(block)
    return buffer.getvalue()


def replace_entry(book: bytes, suffix: str, content: bytes) -> bytes:
    """``book`` with the entry whose name ends in ``suffix`` holding ``content`` instead."""
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as source, zipfile.ZipFile(rebuilt, "w") as target:
        for info in source.infolist():
            data = content if info.filename.endswith(suffix) else source.read(info)
            target.writestr(info, data)
    return rebuilt.getvalue()
