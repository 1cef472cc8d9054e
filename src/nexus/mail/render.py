"""Messages from templates: ``templates/<kind>.subject.txt``, ``.txt`` and ``.html``.

A forker edits the wording in that one folder. Templates are Jinja; the
HTML part is autoescaped, the plain-text part is not (it is text). Every
message has both parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
_ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,  # a template naming a missing value fails, loudly
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind: str, context: dict[str, Any]) -> Rendered:
    subject = _ENVIRONMENT.get_template(f"{kind}.subject.txt").render(context)
    return Rendered(
        subject=" ".join(subject.split()),
        text=_ENVIRONMENT.get_template(f"{kind}.txt").render(context),
        html=_ENVIRONMENT.get_template(f"{kind}.html").render(context),
    )


def kinds() -> list[str]:
    """Every kind of message there are templates for."""
    return sorted(
        path.name.removesuffix(".subject.txt") for path in TEMPLATES.glob("*.subject.txt")
    )
