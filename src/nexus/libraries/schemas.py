"""Request and response shapes of the libraries endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from nexus.api.envelope import PageQuery
from nexus.api.validation import RequestModel
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
