"""The one typed settings object, read from the environment and then `.env`.

It lives in `agent/` because both entry points need it: the agent CLI and the bot
(which may import `agent`). `taiga/` and `storage/` take plain arguments instead.

Secrets are `SecretStr` (the database URL a `DatabaseUrl`, shown with its password masked), so
no repr or log line of the settings, or of what holds them, shows one; `.get_secret_value()`
is called only where a value is handed to the library that uses it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Secret, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_MODEL = "claude-sonnet-5-5"


class Approvers(StrEnum):
    REQUESTER = "requester"
    WRITERS = "writers"


class MissingSettingError(RuntimeError):
    """A setting that the started component needs is not set."""


# Where to find each value a person must supply; used in start-up errors.
WHERE_TO_GET = {
    "slack_bot_token": "Slack app > OAuth & Permissions > Bot User OAuth Token (xoxb-…)",
    "slack_signing_secret": "Slack app > Basic Information > App Credentials > Signing Secret",
    "slack_app_token": "Slack app > Basic Information > App-Level Tokens, scope connections:write"
    " (xapp-…); or set SLACK_SIGNING_SECRET to receive HTTP requests instead",
    "anthropic_api_key": "https://console.anthropic.com/settings/keys",
    "token_encryption_keys": "run `.venv/bin/python -m bot keygen` and paste the key",
}


class DatabaseUrl(Secret[str]):
    """A database URL that shows in `repr()` and `str()` with its password masked."""

    def _display(self) -> str:
        try:
            return make_url(self.get_secret_value()).render_as_string(hide_password=True)
        except ArgumentError:
            return "**********"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    slack_bot_token: SecretStr = SecretStr("")
    slack_signing_secret: SecretStr = SecretStr("")
    slack_app_token: SecretStr = SecretStr("")
    slack_api_url: str = "https://slack.com/api/"

    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_base_url: str | None = None
    anthropic_model: str = DEFAULT_MODEL

    taiga_api_url: str = "https://api.taiga.io/api/v1"
    taiga_web_url: str = "https://tree.taiga.io"

    database_url: DatabaseUrl = DatabaseUrl("sqlite:///./taiga_planner.db")
    token_encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    agent_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    port: int = Field(default=3000, ge=1, le=65535)

    agent_deadline_seconds: float = Field(default=90.0, gt=0)
    agent_max_steps: int = Field(default=10, ge=1)
    agent_max_tool_calls: int = Field(default=25, ge=1)
    agent_max_write_calls: int = Field(default=25, ge=0)
    agent_max_repeated_calls: int = Field(default=2, ge=1)

    plan_approvers: Approvers = Approvers.REQUESTER
    plan_expiry_hours: float = Field(default=24.0, gt=0)
    plan_undo_minutes: float = Field(default=30.0, ge=0)
    max_minutes_chars: int = Field(default=40_000, ge=1)
    # Live progress with Slack's chat streaming where the workspace allows it (else, or when
    # off, a status message updated in place).
    slack_streaming: bool = True
    # Where people's browsers reach this host (`https://planner.example.com`): turns on the
    # password-free connect page (`/connect/<token>`) instead of the login modal.
    public_url: str = ""
    # The most Taiga writes of one apply at once; fewer while Taiga throttles (see README).
    taiga_write_concurrency: int = Field(default=16, ge=1, le=64)
    # Limits that protect the service and Taiga (README "Limits you will hit").
    max_drafting_plans_per_workspace: int = Field(default=10, ge=1)
    max_concurrent_work: int = Field(default=8, ge=1)
    max_queued_work: int = Field(default=200, ge=0)
    slack_name_cache_seconds: float = Field(default=300.0, gt=0)
    api_docs: bool = False  # /docs, /redoc and /openapi.json; off in production
    # The lease an applying (or undoing) run holds on its plan, and how often it renews it; a
    # plan whose lease lapsed (its process died) is taken over by the recovery sweep.
    plan_lease_seconds: float = Field(default=30.0, gt=0)
    plan_heartbeat_seconds: float = Field(default=5.0, gt=0)

    _split_lists = field_validator("token_encryption_keys", "agent_api_keys", mode="before")(
        _split_csv
    )

    @field_validator("public_url")
    @classmethod
    def _public_base(cls, url: str) -> str:
        url = url.strip().rstrip("/")
        if url and not url.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_URL must start with https:// (or http:// on a laptop)")
        return url

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, url: DatabaseUrl) -> DatabaseUrl:
        text = url.get_secret_value()
        for prefix in ("postgres://", "postgresql://"):
            if text.startswith(prefix):
                return DatabaseUrl("postgresql+psycopg://" + text[len(prefix) :])
        return url

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.plan_heartbeat_seconds >= self.plan_lease_seconds:
            raise ValueError("PLAN_HEARTBEAT_SECONDS must be shorter than PLAN_LEASE_SECONDS")
        return self

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def require(self, *names: str) -> None:
        """Stop start-up with one line naming the first missing setting and where to get it."""
        for name in names:
            if not getattr(self, name):
                hint = WHERE_TO_GET.get(name, "see .env.example")
                raise MissingSettingError(f"{name.upper()} is not set ({hint}).")


def invalid_setting_line(error: ValidationError) -> str:
    """One line naming the first malformed setting, what was wrong and the fix."""
    first = error.errors()[0]
    name = ".".join(map(str, first["loc"])).upper()
    return f"Invalid setting {name}: {first['msg']}; fix it in .env or the environment."
