"""Sanitizing and splitting articles: nothing executable survives; text stays whole and in order."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nexus.libraries.ingest import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    EPUB,
    URL_SCHEMES,
    ExtractionError,
    extract,
    pieces_from_html,
    pieces_from_text,
    sanitize,
)
from tests.libraries.books import chapter, epub, replace_entry, zip_bomb

# Each carries something a browser would run, load or navigate to.
XSS = [
    "<script>alert(1)</script><p>after</p>",
    '<p onclick="alert(1)">click</p>',
    '<img src="x" onerror="alert(1)">',
    '<a href="javascript:alert(1)">link</a>',
    '<a href="JaVaScRiPt:alert(1)">mixed case</a>',
    '<a href="&#106;avascript:alert(1)">entity</a>',
    '<a href=" javascript:alert(1)">leading space</a>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<a href="data:text/html,<script>alert(1)</script>">data</a>',
    '<iframe src="https://evil.example/"></iframe><p>framed</p>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<style>body{background:url(javascript:alert(1))}</style><p>styled</p>",
    '<p style="background:url(javascript:alert(1))">inline style</p>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<math><mi xlink:href="javascript:alert(1)">m</mi></math>',
    '<form action="javascript:alert(1)"><input type="submit"></form>',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<script>script>alert(1)<</script>/script>",
    '<div><p title="x" onmouseover="alert(1)">hover</p></div>',
    '<details open ontoggle="alert(1)">t</details>',
    '<video><source onerror="alert(1)"></video>',
    "<!--<script>alert(1)</script>--><p>comment</p>",
    '<a href="vbscript:msgbox(1)">vb</a>',
]
EXECUTABLE = re.compile(
    r"<\s*(script|style|iframe|object|embed|svg|math|form|base|meta|link)\b"
    r"|\son\w+\s*="
    r"|javascript:|vbscript:|data:"
    r"|srcdoc|style\s*=",
    re.IGNORECASE,
)


class _Inert(HTMLParser):
    """Fails on any element, attribute or URL a reader's page must not get."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            # nh3 keeps title and lang on any element (ammonia's generic attributes).
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel", "title", "lang"}, name
            if name in ("href", "src"):
                assert urlsplit(value or "").scheme in URL_SCHEMES, value


def assert_inert(markup: str) -> None:
    """``markup``, as a browser would parse it, holds only allowed tags, attributes and URLs."""
    checker = _Inert(convert_charrefs=True)
    checker.feed(markup)
    checker.close()


@pytest.mark.parametrize("payload", XSS)
def test_nothing_executable_survives(payload: str) -> None:
    assert EXECUTABLE.search(html.unescape(payload))  # the check sees what it looks for
    cleaned = sanitize(payload)
    assert not EXECUTABLE.search(cleaned), cleaned
    for piece in pieces_from_html(payload):
        assert not EXECUTABLE.search(piece.html_sanitized), piece
        assert_inert(piece.html_sanitized)


def test_safe_markup_and_links_stay() -> None:
    cleaned = sanitize('<p>See <a href="https://example.org/a?b=1">this</a>, <em>now</em>.</p>')
    assert cleaned == (
        '<p>See <a href="https://example.org/a?b=1" rel="noopener noreferrer nofollow">this</a>,'
        " <em>now</em>.</p>"
    )


def test_an_article_splits_into_its_blocks_in_order() -> None:
    pieces = pieces_from_html(
        "<h1>Title</h1>loose <i>words</i><p>One\n\n  line.</p><p>Two <b>bold</b></p>"
        "<ul><li>a</li><li>b</li></ul><hr><table><tr><td>x</td><td>y</td></tr></table>"
    )
    assert [piece.canonical_text for piece in pieces] == [
        "Title", "loose words", "One line.", "Two bold", "a b", "x y",
    ]  # fmt: skip
    assert pieces[3].html_sanitized == "<p>Two <b>bold</b></p>"


def test_text_is_escaped_not_interpreted() -> None:
    [piece] = pieces_from_html("<p>1 &lt; 2 &amp;&amp; &lt;script&gt; is text</p>")
    assert piece.canonical_text == "1 < 2 && <script> is text"
    assert piece.html_sanitized == "<p>1 &lt; 2 &amp;&amp; &lt;script&gt; is text</p>"


def test_a_document_nested_50_000_deep_is_refused_with_a_reason_not_a_crash() -> None:
    depth = 50_000
    with pytest.raises(ExtractionError, match="more than 1000 deep"):
        pieces_from_html("<div>" * depth + "deep" + "</div>" * depth)
    # As deep as real pages go is fine.
    [piece] = pieces_from_html("<div>" * 200 + "deep" + "</div>" * 200)
    assert piece.canonical_text == "deep"


def test_an_empty_or_script_only_document_has_no_fragments() -> None:
    assert pieces_from_html("") == []
    assert pieces_from_html("<script>alert(1)</script><p>   </p>") == []


def test_plain_text_splits_at_blank_lines_and_is_escaped() -> None:
    pieces = pieces_from_text("First  para\ncontinues.\r\n\r\nSecond <script>x</script>\n\n\n")
    assert [(p.canonical_text, p.html_sanitized) for p in pieces] == [
        ("First para continues.", "<p>First para continues.</p>"),
        ("Second <script>x</script>", "<p>Second &lt;script&gt;x&lt;/script&gt;</p>"),
    ]


def test_a_relative_link_or_image_is_dropped_an_absolute_one_kept() -> None:
    cleaned = sanitize('<p><a href="/api/v1/auth/logout">in</a><img src="x.png" alt="pic"></p>')
    assert "href" not in cleaned
    assert "src" not in cleaned
    assert 'alt="pic"' in cleaned


def test_a_pages_title_and_head_are_not_part_of_its_article() -> None:
    document = "<html><head><title>Site | Page</title></head><body><p>Body.</p></body></html>"
    assert [p.canonical_text for p in extract(document.encode(), "text/html")] == ["Body."]


def test_markdown_is_rendered_then_sanitized() -> None:
    source = (
        "# Title\n\nSome *emphasis*.\n\n<script>alert(1)</script>\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    pieces = extract(source.encode(), "text/markdown")
    assert [p.canonical_text for p in pieces] == ["Title", "Some emphasis.", "a b 1 2"]
    assert pieces[1].html_sanitized == "<p>Some <em>emphasis</em>.</p>"
    assert all("script" not in p.html_sanitized for p in pieces)


def test_a_byte_order_mark_is_not_text_and_invalid_utf8_is_refused_with_where() -> None:
    assert extract("\ufeffHello".encode(), "text/plain")[0].canonical_text == "Hello"
    with pytest.raises(ExtractionError, match=r"not valid UTF-8 \(byte 6\)"):
        extract(b"Hello \xff\xfe world", "text/plain")


def test_an_upload_with_no_text_is_refused() -> None:
    with pytest.raises(ExtractionError, match="no readable text"):
        extract(b"<script>x</script>", "text/html")


def test_an_epub_reads_its_chapters_in_spine_order_skipping_non_linear_ones() -> None:
    book = epub(
        [
            ("notes", chapter("Notes", "A note.")),
            ("c2", chapter("Two", "Second & last.")),
            ("c1", chapter("One", "First <b>bold</b>.", "More.")),
        ],
        spine=["c1", "notes", "c2"],
        non_linear=["notes"],
    )
    assert [p.canonical_text for p in extract(book, EPUB)] == [
        "One", "First bold.", "More.", "Two", "Second & last.",
    ]  # fmt: skip


BROKEN_EPUBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated": (lambda: epub([("c1", chapter("One", "Text."))])[:-200], "not a readable EPUB"),
    "not-a-zip": (lambda: b"PK\x03\x04 not really a zip", "not a readable EPUB"),
    "zip-bomb": (zip_bomb, "unpacks to more than 200 MiB"),
    "missing-chapter": (
        lambda: epub([("c1", chapter("One", "x"))], spine=["c1", "ghost"]),
        "spine names a chapter its manifest lacks",
    ),
    "path-escape": (
        lambda: epub(
            [("c1", chapter("One", "x"))],
            spine=["c1", "up"],
            extra_manifest='<item id="up" href="../../etc/passwd" media-type="text/html"/>',
        ),
        "outside itself",
    ),
    "latin-1-chapter": (
        lambda: replace_entry(
            epub([("c1", chapter("One", "x"))]), "c1.xhtml", "<p>café</p>".encode("latin-1")
        ),
        r"chapter OEBPS/text/c1.xhtml is not valid UTF-8",
    ),
    "xml-bomb": (
        lambda: replace_entry(
            epub([("c1", chapter("One", "x"))]),
            ".opf",
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<package xmlns="http://www.idpf.org/2007/opf"><metadata>&lol2;</metadata></package>',
        ),
        "not well-formed XML",
    ),
    "no-container": (
        lambda: replace_entry(epub([("c1", chapter("One", "x"))]), "container.xml", b"<x/>"),
        "names no package document",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_EPUBS))
def test_a_broken_epub_is_refused_with_a_reason(case: str) -> None:
    make, reason = BROKEN_EPUBS[case]
    with pytest.raises(ExtractionError, match=reason):
        extract(make(), EPUB)


def test_wrappers_are_looked_through_and_loose_text_becomes_a_paragraph() -> None:
    pieces = pieces_from_html(
        '<div id="content"><section><p>a</p><p>b</p></section>loose <b>text</b>'
        "<div>inner div</div></div>"
    )
    assert [(p.canonical_text, p.html_sanitized) for p in pieces] == [
        ("a", "<p>a</p>"),
        ("b", "<p>b</p>"),
        ("loose text", "<p>loose <b>text</b></p>"),
        ("inner div", "<p>inner div</p>"),
    ]


@pytest.mark.parametrize("flavour", ["epub3", "epub2"])
def test_a_real_book_made_by_pandoc_reads_whole_and_in_order(tmp_path: Path, flavour: str) -> None:
    """pandoc writes EPUBs as readers get them: title page, nav, NCX, styles, a chapter per file."""
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pandoc is missing; .ci/run installs it")
        pytest.skip("pandoc is not installed (apt-get install pandoc)")
    chapters = 12
    source = "% A Real Book\n% Ada Lovelace\n\n" + "".join(
        f"# Chapter {c}\n\n"
        + "".join(f"Chapter {c}, paragraph {p}: *notes* & “quotes”.\n\n" for p in range(20))
        for c in range(chapters)
    )
    (tmp_path / "book.md").write_text(source, encoding="utf-8")
    subprocess.run([pandoc, "book.md", "-t", flavour, "-o", "book.epub"], cwd=tmp_path, check=True)
    texts = [piece.canonical_text for piece in extract((tmp_path / "book.epub").read_bytes(), EPUB)]
    expected = [
        line
        for c in range(chapters)
        for line in [f"Chapter {c}"]
        + [f"Chapter {c}, paragraph {p}: notes & “quotes”." for p in range(20)]
    ]
    # The title page comes first; then every chapter, whole and in order.
    assert texts[: texts.index("Chapter 0")] == ["A Real Book", "Ada Lovelace"]
    assert texts[texts.index("Chapter 0") :] == expected
