"""Turning an uploaded article into reading fragments: sanitize, then split into ordered blocks.

Pure functions, no database: the ingestion job calls them and writes what
they return. HTML is sanitized by **nh3** (ammonia, an html5ever-based
allow-list sanitizer; never regexes): scripts, styles, event handlers,
``javascript:`` and ``data:`` URLs and frames do not survive. The sanitized
document is then split at its top-level blocks (paragraphs, headings,
lists, quotes, code, tables) into fragments, each with its HTML and its text
with whitespace normalised — the text is what search indexes. Splitting
walks the parser's events without recursion, so a document nested 50,000
elements deep is one long fragment, not a crashed worker. Plain text splits
at blank lines.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3

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
# Where one fragment ends and the next begins, at the top level.
BLOCKS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "pre", "blockquote",
        "table", "figure", "hr", "div", "section",
    }
)  # fmt: skip
VOID = frozenset({"br", "hr", "img"})


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
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def pieces_from_html(document: str) -> list[Piece]:
    """The sanitized document's top-level blocks, in order, empty ones left out."""
    splitter = _Splitter()
    splitter.feed(sanitize(document))
    splitter.close()
    splitter.flush()
    return splitter.pieces


def pieces_from_text(text: str) -> list[Piece]:
    """Paragraphs of plain text (split at blank lines), each as an escaped ``<p>``."""
    pieces = []
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        words = " ".join(paragraph.split())
        if words:
            pieces.append(Piece(words, f"<p>{html.escape(words, quote=False)}</p>"))
    return pieces


class _Splitter(HTMLParser):
    """Re-serializes the (already sanitized) HTML, cutting at each top-level block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[Piece] = []
        self._html: list[str] = []
        self._text: list[str] = []
        self._depth = 0
        self._in_block = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
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
        self._html.append(f"</{tag}>")
        self._depth = max(0, self._depth - 1)
        if tag in BLOCKS or tag in ("li", "td", "th", "dd", "dt"):
            self._text.append(" ")  # words in neighbouring cells and items stay apart
        if self._depth == 0 and self._in_block:
            self.flush()

    def handle_data(self, data: str) -> None:
        self._html.append(html.escape(data, quote=False))
        self._text.append(data)

    def flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.pieces.append(Piece(text, "".join(self._html).strip()))
        self._html, self._text, self._in_block = [], [], False
