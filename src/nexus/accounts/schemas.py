"""Request and response shapes of the accounts endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from nexus.api.envelope import PageQuery
from nexus.api.validation import RequestModel

# Length is checked by the password policy, with its own message; this only
# stops absurd bodies before they reach the hasher.
Password = Field(min_length=1, max_length=1024)


class RegisterIn(RequestModel):
    email: EmailStr
    password: str = Password
    invite_code: str | None = Field(default=None, min_length=1, max_length=256)


class LoginIn(RequestModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Password


class PasswordChangeIn(RequestModel):
    current_password: str = Password
    new_password: str = Password


class DeleteMeIn(RequestModel):
    password: str = Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: str
    is_active: bool
    created_at: datetime


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int


class UserListQuery(PageQuery):
    role: Literal["admin", "member"] | None = None
    is_active: bool | None = None
    email_prefix: str | None = Field(default=None, min_length=1, max_length=320)


class UserPatchIn(RequestModel):
    role: Literal["admin", "member"] | None = None
    is_active: bool | None = None


class InviteIn(RequestModel):
    expires_in_hours: int | None = Field(default=None, ge=1, le=24 * 90)


class InviteOut(BaseModel):
    code: str
    expires_at: datetime
