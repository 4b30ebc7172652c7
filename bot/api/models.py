"""Request and response bodies of the HTTP API (`POST /agent/run`, `GET /health`).

The request keeps the original service's field names so existing callers keep working. Tokens
are `SecretStr`: they never show up in logs, reprs or validation errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from agent.proposal import Usage


class UserContext(BaseModel):
    """Who the caller says it is. Informational only: permissions come from Taiga."""

    model_config = ConfigDict(extra="ignore")

    id: int | None = None
    username: str | None = None
    email: str | None = None
    roles: list[str] = Field(default_factory=list)


class AgentRunRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project_id: int = Field(gt=0)
    milestone_id: int | None = Field(default=None, gt=0)
    user_story_id: int | None = Field(default=None, gt=0)
    prompt: str = Field(
        min_length=1,
        description="The meeting minutes and the instruction, e.g. "
        "'…minutes…\\n\\nCreate user stories and tasks for Sprint 6.'",
    )
    auth_token: SecretStr = Field(description="The caller's Taiga access token (Bearer).")
    refresh: SecretStr | None = Field(
        default=None, description="The caller's Taiga refresh token, used if the access expired."
    )
    user_context: UserContext | None = None
    dry_run: bool = Field(default=False, description="Only propose; write nothing to Taiga.")
    allow_partial: bool = Field(
        default=False,
        description="Apply a plan even if planning stopped early (a budget, the deadline, an "
        "answer cut off). Without it such a plan is refused (409, or 504 for the deadline) and "
        "the answer carries what was proposed.",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be blank")
        return value


class TaskArtifact(BaseModel):
    id: int | None
    subject: str
    ref: int | None = None
    url: str | None = None


class StoryArtifact(BaseModel):
    id: int | None
    subject: str
    ref: int | None = None
    url: str | None = None
    existing: bool = False  # a story that was already in Taiga (only tasks were added)
    tasks: list[TaskArtifact] = Field(default_factory=list)


class Artifacts(BaseModel):
    milestone_id: int | None = None
    milestone_name: str | None = None
    milestone_url: str | None = None
    user_stories: list[StoryArtifact] = Field(default_factory=list)


class RefreshedTokens(BaseModel):
    """The new Taiga token pair, returned only when the request's access token was refreshed.
    Plain strings, since the caller must receive them, but never shown in reprs (or logs)."""

    auth_token: str = Field(repr=False)
    refresh: str | None = Field(default=None, repr=False)


class AgentRunResponse(BaseModel):
    summary: str
    artifacts: Artifacts
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    tokens: RefreshedTokens | None = None
    plan_id: str | None = None
    dry_run: bool = False
    complete: bool = True


class PartialPlanRefused(BaseModel):
    """A plan that stopped early and was not applied: why, and what was proposed."""

    detail: str
    stopped: str
    proposal: AgentRunResponse


class HealthResponse(BaseModel):
    """`GET /health`: "ok" only when the database answers at the schema this code needs and,
    in Socket Mode, the websocket to Slack is up; otherwise "degraded" with the reason (503)."""

    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable", "not migrated", "behind", "ahead"]
    schema_revision: str | None = Field(description="where the database is (null: unmigrated)")
    schema_head: str | None = Field(description="the revision this code needs")
    slack: Literal["socket connected", "socket disconnected", "http", "off"]
    reason: str | None = None


class ErrorResponse(BaseModel):
    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for our plain-sentence error bodies."""
    return {code: {"model": ErrorResponse} for code in codes}
