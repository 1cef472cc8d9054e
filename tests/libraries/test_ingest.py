"""Sanitizing and splitting articles: nothing executable survives; text stays whole and in order."""

from __future__ import annotations

import html
import re

import pytest

from nexus.libraries.ingest import pieces_from_html, pieces_from_text, sanitize

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


@pytest.mark.parametrize("payload", XSS)
def test_nothing_executable_survives(payload: str) -> None:
    assert EXECUTABLE.search(html.unescape(payload))  # the check sees what it looks for
    cleaned = sanitize(payload)
    assert not EXECUTABLE.search(cleaned), cleaned
    for piece in pieces_from_html(payload):
        assert not EXECUTABLE.search(piece.html_sanitized), piece


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


def test_a_deeply_nested_document_is_one_fragment_not_a_crash() -> None:
    depth = 20_000
    [piece] = pieces_from_html("<div>" * depth + "deep" + "</div>" * depth)
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
