"""Request and response shapes of the libraries endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from nexus.api.envelope import PageQuery
from nexus.api.validation import File, RequestModel
from nexus.libraries.models import NAME_MAX

Role = Literal["admin", "member"]


class LibraryIn(RequestModel):
    """A library's name: 1 to 100 characters, not counting spaces around it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Reading group"}]})

    # The raw limits are in the document; trimming can only make a name
    # shorter, so a name the document allows is never refused for length
    # after it, only for being blank.
    name: str = Field(min_length=1, max_length=NAME_MAX)

    @field_validator("name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        trimmed = value.strip()
        if not trimmed:
            raise ValueError("must not be blank")
        return trimmed


class LibraryOut(BaseModel):
    """A library, with the viewer's role in it."""

    id: uuid.UUID
    name: str
    is_default: bool
    owner_user_id: uuid.UUID
    role: Role = Field(description="The viewer's role in this library.")
    created_at: datetime
    updated_at: datetime


class MemberIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "grace@example.com", "role": "member"}]}
    )

    email: EmailStr
    role: Role = "member"


class MemberPatchIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: Role


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    role: Role
    created_at: datetime


class LibraryQuery(PageQuery):
    """``?limit=&cursor=``: the viewer's libraries, oldest first."""


TITLE_MAX = 300
Kind = Literal["web_article", "epub", "pdf", "video", "podcast_episode"]
Status = Literal["pending", "extracting", "ready_for_reading", "embedding", "ready", "failed"]


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    trimmed = " ".join(value.split())
    if not trimmed:
        raise ValueError("must not be blank")
    return trimmed


class ArticleIn(RequestModel):
    """An article as JSON: its title and either its HTML or its plain text."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "On reading",
                    "html": "<h1>On reading</h1><p>Read slowly.</p>",
                    "canonical_source_url": "https://example.org/on-reading",
                }
            ]
        }
    )

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    html: str | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)
    # Kept as a reference; never fetched.
    canonical_source_url: HttpUrl | None = Field(default=None, max_length=2048)

    @field_validator("title")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return _title(value)

    @model_validator(mode="after")
    def _one_body(self) -> ArticleIn:
        if (self.html is None) == (self.text is None):
            raise ValueError("give exactly one of html and text")
        return self


class FileIn(RequestModel):
    """A file upload: ``file`` (.html, .htm, .xhtml, .txt, .md, .markdown or .epub), a title."""

    file: File
    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=TITLE_MAX,
        description="Defaults to the file's name without its extension.",
    )
    canonical_source_url: HttpUrl | None = Field(default=None, max_length=2048)

    @field_validator("title")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return _title(value)


class OriginalOut(BaseModel):
    content_type: str
    filename: str | None
    size: int
    sha256: str


class MediaOut(BaseModel):
    id: uuid.UUID
    kind: Kind
    title: str
    canonical_source_url: str | None
    processing_status: Status
    processing_error: str | None = Field(description="Why ingestion failed, when it did.")
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    original: OriginalOut | None


class UploadOut(BaseModel):
    media: MediaOut
    job_id: uuid.UUID | None = Field(
        description="The ingestion job (GET /api/v1/jobs/{job_id}); null when the library "
        "held this content already."
    )


class ReprocessOut(BaseModel):
    media: MediaOut
    job_id: uuid.UUID


class FragmentOut(BaseModel):
    idx: int
    canonical_text: str
    html_sanitized: str = Field(description="Sanitized HTML: safe to insert into a page.")


class FragmentQuery(PageQuery):
    """``?limit=&cursor=``: a media's fragments in reading order."""


class SearchQuery(PageQuery):
    """``?q=`` (web-search syntax: quotes, ``or``, ``-word``), optionally in one library."""

    q: str = Field(min_length=1, max_length=256)
    library_id: uuid.UUID | None = None


class HitMedia(BaseModel):
    id: uuid.UUID
    title: str
    kind: Kind


class HitOut(BaseModel):
    media: HitMedia
    fragment_idx: int
    snippet: str = Field(
        description="The matching text, HTML-escaped, with each match in <mark></mark>."
    )
    rank: float
