"""Typed views of Taiga's response bodies (taiga-back 6.7). Unknown keys are ignored."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TaigaTokens(_Model):
    """An access token and (usually) a refresh token; both hidden from reprs and logs."""

    auth_token: SecretStr
    refresh: SecretStr | None = None


class TaigaUser(_Model):
    id: int
    username: str
    full_name_display: str
    email: str | None = None
    roles: list[str] = Field(default_factory=list)


class AuthResult(_Model):
    user: TaigaUser
    tokens: TaigaTokens


class Member(_Model):
    id: int  # the USER id (Taiga's project detail lists members by user id)
    username: str
    full_name_display: str
    role_name: str
    is_active: bool = True


class MilestoneRef(_Model):
    id: int
    slug: str
    name: str
    closed: bool = False


class Project(_Model):
    id: int
    slug: str
    name: str
    is_private: bool = True
    my_permissions: frozenset[str] = frozenset()
    members: list[Member] = Field(default_factory=list)
    milestones: list[MilestoneRef] = Field(default_factory=list)
    tags_colors: dict[str, str | None] = Field(default_factory=dict)  # the project's tags
    i_am_owner: bool = False
    i_am_admin: bool = False
    i_am_member: bool = False

    @field_validator("members", mode="before")
    @classmethod
    def _member_objects_only(cls, value: Any) -> Any:
        """Project *lists* give members as bare user ids; only the detail has the objects."""
        if isinstance(value, list):
            return [item for item in value if not isinstance(item, int)]
        return value


def _status_name(data: Any) -> Any:
    """Lift `status_extra_info.name` into `status_name`."""
    if isinstance(data, dict) and "status_name" not in data:
        info = data.get("status_extra_info")
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            return {**data, "status_name": info["name"]}
    return data


class UserStory(_Model):
    id: int
    ref: int
    subject: str
    project: int
    milestone: int | None = None
    milestone_slug: str | None = None
    owner: int | None = None
    assigned_to: int | None = None
    due_date: date | None = None
    created_date: datetime
    modified_date: datetime | None = None
    version: int = 1  # Taiga's optimistic-concurrency counter: +1 on every accepted PATCH
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    status_name: str | None = None
    is_closed: bool = False
    # Who made it and for what, as the creating program wrote it (None for things made by hand).
    external_reference: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _lift_status(cls, data: Any) -> Any:
        return _status_name(data)

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_names(cls, value: Any) -> Any:
        """Taiga sends tags as `[["auth", null], ...]` (name, colour); keep the names."""
        if value is None:
            return []
        if isinstance(value, list):
            return [tag[0] if isinstance(tag, list | tuple) and tag else tag for tag in value]
        return value


class Milestone(_Model):
    id: int
    name: str
    slug: str
    project: int
    estimated_start: date
    estimated_finish: date
    closed: bool = False
    user_stories: list[UserStory] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stories_know_their_sprint(self) -> Milestone:
        """Embedded stories omit `milestone_slug`; fill it from the sprint they sit in."""
        for story in self.user_stories:
            if story.milestone_slug is None and story.milestone == self.id:
                story.milestone_slug = self.slug
        return self


class Task(_Model):
    id: int
    ref: int
    subject: str
    project: int
    milestone: int | None = None
    milestone_slug: str | None = None
    user_story: int | None = None
    owner: int | None = None
    assigned_to: int | None = None
    due_date: date | None = None
    created_date: datetime
    description: str | None = None
    status_name: str | None = None
    is_closed: bool = False
    external_reference: list[str] | None = None
    version: int | None = None  # Taiga's edit counter: +1 for every accepted change

    @model_validator(mode="before")
    @classmethod
    def _lift_status(cls, data: Any) -> Any:
        return _status_name(data)
