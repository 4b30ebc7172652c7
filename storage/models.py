"""SQLModel tables. Every timestamp is timezone-aware UTC, on SQLite too (`UTCDateTime`).

Changing a table means a new Alembic revision in `storage/migrations/versions/`; a test
compares these models with the migrated schema.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from storage.bounded import BoundedString

LEDGER_STATES: Final = frozenset({"pending", "done"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_plan_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores TIMESTAMPTZ; SQLite stores the UTC wall time and gets UTC attached
    back on read. Naive datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(*, nullable: bool = False, **kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, **kwargs)


class TaigaLink(SQLModel, table=True):
    """A Slack user's linked Taiga account; tokens only ever encrypted."""

    __tablename__ = "taiga_link"
    __table_args__ = (
        sa.UniqueConstraint("slack_team_id", "slack_user_id", name="uq_taiga_link_slack_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    slack_team_id: str = Field(sa_type=BoundedString(32, "Slack workspace id"))
    slack_user_id: str = Field(sa_type=BoundedString(32, "Slack user id"))
    taiga_user_id: int
    taiga_username: str = Field(sa_type=BoundedString(255, "Taiga username"))
    # Shown in App Home (NULL on links made before revision 0009).
    taiga_full_name: str | None = Field(
        default=None, sa_type=BoundedString(255, "Taiga full name")
    )
    auth_token_enc: str = Field(sa_type=sa.Text, repr=False)
    refresh_token_enc: str | None = Field(default=None, sa_type=sa.Text, repr=False)
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)


class ChannelProject(SQLModel, table=True):
    """A channel's default Taiga project."""

    __tablename__ = "channel_project"

    slack_team_id: str = Field(sa_type=BoundedString(32, "Slack workspace id"), primary_key=True)
    slack_channel_id: str = Field(sa_type=BoundedString(32, "Slack channel id"), primary_key=True)
    project_id: int
    project_slug: str = Field(sa_type=BoundedString(255, "Taiga project slug"))
    project_name: str = Field(sa_type=BoundedString(255, "Taiga project name"))
    set_by: str = Field(sa_type=BoundedString(64, "Slack user id"))
    updated_at: datetime = _ts(default_factory=utcnow)


class Plan(SQLModel, table=True):
    """One planning request, from drafting to done; `state` only moves by compare-and-set,
    along `storage.plan_states.MOVES`."""

    __tablename__ = "plan"
    __table_args__ = (
        sa.Index("ix_plan_state_expires_at", "state", "expires_at"),
        sa.Index("ix_plan_slack_thread", "slack_team_id", "slack_channel_id", "slack_thread_ts"),
        sa.Index("uq_plan_idempotency_key", "idempotency_key", unique=True),
    )

    id: str = Field(default_factory=new_plan_id, primary_key=True, sa_type=sa.String(32))
    slack_team_id: str = Field(sa_type=BoundedString(32, "Slack workspace id"))
    slack_channel_id: str = Field(sa_type=BoundedString(32, "Slack channel id"))
    slack_thread_ts: str = Field(sa_type=BoundedString(32, "Slack thread id"))
    slack_message_ts: str | None = Field(
        default=None, sa_type=BoundedString(32, "Slack message id")
    )
    requester_slack_id: str | None = Field(default=None, sa_type=BoundedString(64, "Slack user id"))
    project_id: int
    project_slug: str = Field(sa_type=BoundedString(255, "Taiga project slug"))
    target_sprint: str = Field(sa_type=BoundedString(255, "sprint name"))
    minutes_digest: str = Field(sa_type=sa.String(64))
    state: str = Field(default="drafting", sa_type=sa.String(16))
    # none_as_null: a Python None is SQL NULL (not the JSON value null), so IS NULL works.
    proposal: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    result: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    error: str | None = Field(default=None, sa_type=sa.Text)
    decided_by: str | None = Field(default=None, sa_type=BoundedString(64, "Slack user id"))
    created_at: datetime = _ts(default_factory=utcnow)
    updated_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime | None = _ts(nullable=True, default=None)
    version: int = Field(default=1)
    # The proposal's version as people see it: 1 once drafted, +1 for each edit or refinement
    # (0 while drafting); its history is in `plan_revision`.
    proposal_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # HTTP API: sha256 of (the caller's API key, its Idempotency-Key header), and a digest of
    # the request without its tokens, so a repeated request finds this plan (NULL otherwise).
    idempotency_key: str | None = Field(default=None, sa_type=sa.String(64))
    request_digest: str | None = Field(default=None, sa_type=sa.String(64))
    # The Slack thread the plan came from, linked from what it creates (NULL: API and CLI plans).
    slack_permalink: str | None = Field(default=None, sa_type=sa.Text)
    # While `executing` or `undoing`: the run that holds the plan and until when; its heartbeat
    # renews `lease_until`, and a plan whose lease has lapsed belongs to a run that died.
    lease_owner: str | None = Field(default=None, sa_type=sa.String(64))
    lease_until: datetime | None = _ts(nullable=True, default=None)


class PlanRevision(SQLModel, table=True):
    """One version of a plan's proposal: how it came to be (drafted, edited, refined), by whom,
    from what instruction, and the proposal itself."""

    __tablename__ = "plan_revision"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "number", name="uq_plan_revision_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(
        sa_type=sa.String(32),
        sa_column_args=[sa.ForeignKey("plan.id", ondelete="CASCADE", name="fk_plan_revision_plan")],
    )
    number: int
    kind: str = Field(sa_type=sa.String(16))
    author_slack_id: str | None = Field(default=None, sa_type=BoundedString(64, "Slack user id"))
    note: str | None = Field(default=None, sa_type=sa.Text)
    proposal: dict[str, Any] = Field(sa_type=sa.JSON(none_as_null=True))
    created_at: datetime = _ts(default_factory=utcnow)


class WriteLedger(SQLModel, table=True):
    """One Taiga write of a plan: pending before it is sent, done after."""

    __tablename__ = "write_ledger"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "action_key", name="uq_write_ledger_plan_action"),
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(
        sa_type=sa.String(32),
        sa_column_args=[sa.ForeignKey("plan.id", ondelete="CASCADE", name="fk_write_ledger_plan")],
    )
    action_key: str = Field(sa_type=BoundedString(255, "write key"))
    state: str = Field(default="pending", sa_type=sa.String(16))
    taiga_id: int | None = None
    taiga_ref: int | None = None
    attempted_at: datetime = _ts(default_factory=utcnow)
    done_at: datetime | None = _ts(nullable=True, default=None)
    # The Taiga user whose session sends the write: Taiga records them as the object's owner,
    # so reconciliation looks for objects of this user (NULL on rows from before revision 0003).
    actor_taiga_id: int | None = None
    # The object's Taiga `version` right after our write (undo keeps what changed since), and
    # for a moved story the sprint it came from (NULL: the backlog).
    taiga_version: int | None = None
    previous_milestone_id: int | None = None
    # The `external_reference` the latest attempt sent to Taiga, which names this write exactly
    # (NULL on rows claimed before revision 0006, and for sprints, which cannot carry one).
    external_reference: list[str] | None = Field(
        default=None, sa_type=sa.JSON(none_as_null=True)
    )


class SlackEvent(SQLModel, table=True):
    """A delivered Slack event id, so Slack's retries are answered once."""

    __tablename__ = "slack_event"
    __table_args__ = (sa.Index("ix_slack_event_received_at", "received_at"),)

    event_id: str = Field(sa_type=BoundedString(64, "Slack event id"), primary_key=True)
    received_at: datetime = _ts(default_factory=utcnow)


class ConnectLink(SQLModel, table=True):
    """A one-time link to the connect page, bound to one Slack user; only its hash is kept.

    `used_at` is set once, by the one request that claims the link (a conditional UPDATE)."""

    __tablename__ = "connect_link"
    __table_args__ = (sa.Index("ix_connect_link_expires_at", "expires_at"),)

    token_hash: str = Field(sa_type=sa.String(64), primary_key=True)
    slack_team_id: str = Field(sa_type=sa.String(32))
    slack_user_id: str = Field(sa_type=sa.String(32))
    created_at: datetime = _ts(default_factory=utcnow)
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True, default=None)
    failed_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
class DraftingClaim(SQLModel, table=True):
    """A plan being drafted: one per Slack user per channel, and at most the workspace's cap
    per workspace (`slot` counts from 0 below the cap). Rows older than the planning deadline
    plus a margin belong to a process that died and are taken over."""

    __tablename__ = "drafting_claim"
    __table_args__ = (
        sa.UniqueConstraint(
            "slack_team_id", "slack_channel_id", "slack_user_id", name="uq_drafting_claim_user"
        ),
    )

    slack_team_id: str = Field(
        sa_type=BoundedString(32, "Slack workspace id"), primary_key=True
    )
    slot: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    slack_channel_id: str = Field(sa_type=BoundedString(32, "Slack channel id"))
    slack_user_id: str = Field(sa_type=BoundedString(64, "Slack user id"))
    # Our id for this claim, so only its holder releases it.
    token: str = Field(default_factory=new_plan_id, sa_type=sa.String(32))
    # The thread the plan is drafted in (NULL for the moment before it is posted).
    slack_thread_ts: str | None = Field(default=None, sa_type=BoundedString(32, "Slack thread id"))
    claimed_at: datetime = _ts(default_factory=utcnow)
