"""Turning an uploaded article into reading fragments: sanitize, then split into ordered blocks.

Pure functions, no database: the ingestion job calls them and writes what
they return. HTML is sanitized by **nh3** (ammonia, an html5ever-based
allow-list sanitizer; never regexes): scripts, styles, event handlers,
``javascript:`` and ``data:`` URLs and frames do not survive. The sanitized
document is then split at its outermost blocks (paragraphs, headings,
lists, quotes, code, tables; wrappers such as a chapter's ``<section>`` are
looked through) into fragments, each with its HTML and its text
with whitespace normalised — the text is what search indexes. Splitting
walks the parser's events without recursion, and a document nested more
than ``MAX_DEPTH`` elements deep is refused with a reason, not a crashed
worker. Plain text splits at blank lines.

``read`` (``extract``: all at once) reads an upload of any accepted format
(``FORMATS``): HTML, plain text, Markdown (rendered by markdown-it-py, then sanitized like HTML) and
EPUB (its chapters in spine order; the zip is read with size limits and its
XML with defusedxml, so a zip or XML bomb is refused, not inflated). What
cannot be read raises ``ExtractionError`` with a reason a user can act on.
Nothing here touches the network: links and images are kept as text
attributes, never fetched.
"""

from __future__ import annotations

import html
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from io import BytesIO
from pathlib import PurePosixPath
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import nh3
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml
from markdown_it import MarkdownIt

# What a reader needs; everything else is dropped with its attributes.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dfn",
        "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
        "section", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
# No javascript:, no data: (an inline document can carry script), no file:.
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Each of these, outside any other, is one fragment.
BLOCKS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "pre", "blockquote",
        "table", "figure", "hr",
    }
)  # fmt: skip
# Wrappers (a chapter's <section>, a page's <div id="content">): never a
# fragment themselves; the blocks inside them are. Text loose in one is a
# fragment of its own.
CONTAINERS = frozenset({"div", "section"})
VOID = frozenset({"br", "hr", "img"})
# Removed with everything inside them (other disallowed tags keep their text):
# a page's <title> is not part of its article.
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "title", "template", "noscript", "iframe", "object", "textarea"}
)

# The accepted uploads: file extension -> the content type it is stored as.
FORMATS = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".epub": "application/epub+zip",
}
EPUB = "application/epub+zip"
# An EPUB's limits: a 10 MiB upload of ordinary books inflates to well under
# these; a zip bomb declares far more and is refused before anything inflates.
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ENTRIES = 10_000
MAX_XML_BYTES = 4 * 1024 * 1024
# One article of more fragments than this is refused: it is not an article.
MAX_FRAGMENTS = 100_000
# The splitter is fed this many characters at a time.
FEED_CHARS = 65_536
# Real articles nest a few dozen elements deep; far deeper is an attack or
# a broken converter, refused with a reason rather than stored as one blob.
MAX_DEPTH = 1_000


class ExtractionError(ValueError):
    """The upload cannot be turned into fragments; ``str()`` says why, for the user."""


@dataclass(frozen=True)
class Piece:
    """One fragment to be: its text (for search and reading) and its sanitized HTML."""

    canonical_text: str
    html_sanitized: str


def sanitize(document: str) -> str:
    """``document`` with only the allowed tags, attributes and URL schemes left."""
    return nh3.clean(
        document,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        # A relative URL would point into this service, with the reader's
        # cookies: only absolute http(s) and mailto links stay.
        url_relative="deny",
    )


def pieces_from_html(document: str) -> list[Piece]:
    """The sanitized document's outermost blocks, in order, empty ones left out."""
    return list(_html_pieces(document))


def _html_pieces(document: str) -> Iterator[Piece]:
    # Fed a slice at a time, so pieces come out while the rest is parsed:
    # a job streams them to PostgreSQL, which indexes them meanwhile.
    splitter = _Splitter()
    cleaned = sanitize(document)
    for start in range(0, len(cleaned), FEED_CHARS):
        splitter.feed(cleaned[start : start + FEED_CHARS])
        yield from splitter.take()
    splitter.close()
    splitter.flush()
    yield from splitter.take()


def pieces_from_text(text: str) -> list[Piece]:
    """Paragraphs of plain text (split at blank lines), each as an escaped ``<p>``."""
    pieces = []
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        words = " ".join(paragraph.split())
        if words:
            pieces.append(Piece(words, f"<p>{html.escape(words, quote=False)}</p>"))
    return pieces


def read(content: bytes, content_type: str) -> Iterator[Piece]:
    """The fragments of an upload stored as ``content_type``, in order, as they are made.

    Raises ``ExtractionError`` when the upload is unreadable, holds no text or
    too many fragments — possibly after yielding some: a consumer writes
    them in a transaction it rolls back then.
    """
    count = 0
    for piece in _pieces(content, content_type):
        count += 1
        if count > MAX_FRAGMENTS:
            raise ExtractionError(f"The upload splits into more than {MAX_FRAGMENTS} fragments.")
        yield piece
    if count == 0:
        raise ExtractionError("The upload holds no readable text.")


def extract(content: bytes, content_type: str) -> list[Piece]:
    """All of :func:`read` at once."""
    return list(read(content, content_type))


def _pieces(content: bytes, content_type: str) -> Iterator[Piece]:
    if content_type == EPUB:
        yield from _epub(content)
    elif content_type == "text/html":
        yield from _html_pieces(_text(content))
    elif content_type == "text/markdown":
        yield from _html_pieces(_markdown().render(_text(content)))
    elif content_type == "text/plain":
        yield from pieces_from_text(_text(content))
    else:
        raise ExtractionError(f"Files of type {content_type} cannot be read.")


def _text(content: bytes, what: str = "The file") -> str:
    try:
        # utf-8-sig: a byte-order mark (which Windows editors write) is not text.
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionError(
            f"{what} is not valid UTF-8 (byte {exc.start}); save it as UTF-8 and upload it again."
        ) from None


def _markdown() -> MarkdownIt:
    # CommonMark with tables; raw HTML in the Markdown is kept here and
    # sanitized with the rest, as in an HTML upload.
    return MarkdownIt("commonmark", {"html": True}).enable("table")


_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF_NS = "{http://www.idpf.org/2007/opf}"


def _epub(content: bytes) -> Iterator[Piece]:
    """An EPUB's chapters in spine order; its limits checked before anything inflates."""
    try:
        with zipfile.ZipFile(BytesIO(content)) as book:
            entries = book.infolist()
            if len(entries) > MAX_ENTRIES:
                raise ExtractionError(f"The EPUB has more than {MAX_ENTRIES} files.")
            if sum(entry.file_size for entry in entries) > MAX_UNPACKED_BYTES:
                raise ExtractionError(
                    f"The EPUB unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB."
                )
            container = _xml(book, "META-INF/container.xml")
            rootfile = container.find(f".//{_CONTAINER_NS}rootfile")
            opf_path = rootfile.get("full-path") if rootfile is not None else None
            if not opf_path:
                raise ExtractionError("The EPUB's container names no package document.")
            package = _xml(book, opf_path)
            base = posixpath.dirname(opf_path)
            manifest = {
                item.get("id"): item.get("href", "")
                for item in package.iter(f"{_OPF_NS}item")
                if item.get("id")
            }
            for itemref in package.iter(f"{_OPF_NS}itemref"):
                if itemref.get("linear") == "no":
                    continue  # notes, covers: off the reading path
                href = manifest.get(itemref.get("idref"))
                if not href:
                    raise ExtractionError("The EPUB's spine names a chapter its manifest lacks.")
                path = _within(base, href)
                chapter = _text(_read(book, path), f"The chapter {path}")
                yield from _html_pieces(chapter)
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"The file is not a readable EPUB (zip): {exc}.") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        # Zip64 oddities, an unknown compression method, an encrypted entry.
        raise ExtractionError(f"The EPUB cannot be read: {exc}.") from None


def _read(book: zipfile.ZipFile, path: str) -> bytes:
    try:
        return book.read(path)
    except KeyError:
        raise ExtractionError(f"The EPUB lacks {path}, which it names.") from None


def _xml(book: zipfile.ZipFile, path: str) -> Element:
    info = book.getinfo(path) if path in book.namelist() else None
    if info is None:
        raise ExtractionError(f"The EPUB lacks {path}; it is not an EPUB.")
    if info.file_size > MAX_XML_BYTES:
        raise ExtractionError(f"The EPUB's {path} is too large to be a package document.")
    try:
        element: Element = parse_xml(book.read(info))
    except (ParseError, DefusedXmlException) as exc:
        raise ExtractionError(f"The EPUB's {path} is not well-formed XML: {exc}.") from None
    return element


def _within(base: str, href: str) -> str:
    """``href`` resolved against the package's folder, refusing any way out of the book."""
    href = href.split("#", 1)[0]
    path = posixpath.normpath(posixpath.join(base, unquote(href)))
    if path.startswith(("../", "/")) or path == ".." or PurePosixPath(path).is_absolute():
        raise ExtractionError("The EPUB names a chapter outside itself.")
    return path


class _Splitter(HTMLParser):
    """Re-serializes the (already sanitized) HTML, one fragment per outermost block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[Piece] = []
        self._html: list[str] = []
        self._text: list[str] = []
        self._depth = 0  # elements open inside the current block (or loose run)
        self._nesting = 0  # elements open in all, wrappers included
        self._in_block = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self._nesting += 1
            if self._nesting > MAX_DEPTH:
                raise ExtractionError(f"The document nests elements more than {MAX_DEPTH} deep.")
        if self._depth == 0 and tag in CONTAINERS:
            self.flush()  # a wrapper: what came before it is done; it leaves no tag
            return
        if self._depth == 0 and tag in BLOCKS:
            self.flush()  # loose inline content before it is a piece of its own
            self._in_block = True
        rendered = "".join(
            f' {name}="{html.escape(value or "", quote=True)}"' for name, value in attrs
        )
        self._html.append(f"<{tag}{rendered}>")
        if tag in VOID:
            if tag == "br":
                self._text.append(" ")
            if self._depth == 0 and tag in BLOCKS:
                self.flush()
            return
        self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        self._nesting = max(0, self._nesting - 1)
        if self._depth == 0:
            if tag in CONTAINERS:
                self.flush()
            return  # a wrapper's end, or a stray end tag: nothing to write
        self._html.append(f"</{tag}>")
        self._depth -= 1
        if tag in BLOCKS or tag in ("li", "td", "th", "dd", "dt", "div", "section"):
            self._text.append(" ")  # words in neighbouring cells and items stay apart
        if self._depth == 0 and self._in_block:
            self.flush()

    def handle_data(self, data: str) -> None:
        self._html.append(html.escape(data, quote=False))
        self._text.append(data)

    def take(self) -> list[Piece]:
        """The pieces finished since the last call."""
        pieces, self.pieces = self.pieces, []
        return pieces

    def flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            markup = "".join(self._html).strip()
            # Loose text becomes a paragraph, so every fragment renders as a block.
            self.pieces.append(Piece(text, markup if self._in_block else f"<p>{markup}</p>"))
        self._html, self._text, self._in_block = [], [], False
