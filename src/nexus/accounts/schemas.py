"""Request and response shapes of the accounts endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, computed_field

from nexus.api.envelope import PageQuery
from nexus.api.validation import RequestModel

# Length is checked by the password policy, with its own message; this only
# stops absurd bodies before they reach the hasher.
Password = Field(min_length=1, max_length=1024)
NewPassword = Field(
    min_length=1,
    max_length=1024,
    description=(
        "12 to 128 characters; not a common password (nor one padded or repeated), "
        "not the e-mail address."
    ),
)
EXAMPLE_PASSWORD = "violet-tangerine-kettle-42"  # noqa: S105 - the docs' example


class RegisterIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": EXAMPLE_PASSWORD}]}
    )

    email: EmailStr
    password: str = NewPassword
    invite_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Required when NEXUS_REGISTRATION_MODE is invite.",
    )


class LoginIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": EXAMPLE_PASSWORD}]}
    )

    email: str = Field(min_length=1, max_length=320)
    password: str = Password


class PasswordChangeIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"current_password": EXAMPLE_PASSWORD, "new_password": "marble-quince-lantern-7"}
            ]
        }
    )

    current_password: str = Password
    new_password: str = NewPassword


class DeleteMeIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": EXAMPLE_PASSWORD}]})

    password: str = Field(min_length=1, max_length=1024, description="Confirms it is you.")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: str
    is_active: bool
    created_at: datetime
    email_verified_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def email_verified(self) -> bool:
        """Whether the address was proven by a mailed link."""
        return self.email_verified_at is not None


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
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    role: Literal["admin", "member"] | None = None
    is_active: bool | None = None


class InviteIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"expires_in_hours": 72}]})

    expires_in_hours: int | None = Field(
        default=None, ge=1, le=24 * 90, description="Default: NEXUS_INVITE_HOURS."
    )


class InviteOut(BaseModel):
    code: str
    expires_at: datetime


# What a mailed link's token looks like (nexus.mail.tokens: 43 URL-safe characters).
Token = Field(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")


class TokenIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"token": "Qm9vay1zaGVsZi1saWdodC1ob3VzZS13aW5kb3ctNDI"}]}
    )

    token: str = Token


class EmailChangeIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"new_email": "ada@new.example.com", "password": EXAMPLE_PASSWORD}]
        }
    )

    new_email: EmailStr
    password: str = Password


class ForgotPasswordIn(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: str = Field(min_length=1, max_length=320)


class ResetPasswordIn(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "Qm9vay1zaGVsZi1saWdodC1ob3VzZS13aW5kb3ctNDI",
                    "new_password": "marble-quince-lantern-7",
                }
            ]
        }
    )

    token: str = Token
    new_password: str = Password
