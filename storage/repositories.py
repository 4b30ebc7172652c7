"""Repository functions: sync, `session` first, keyword-only rest; call them inside `Database.run`.

Concurrency rules that the rest of the bot relies on:
- `transition_plan` is one conditional UPDATE: exactly one caller moves a plan out of a state.
- `claim_actions`, `first_delivery`, `create_plan` with an idempotency key, `save_link` and
  `set_channel_project` are one `INSERT ... ON CONFLICT` each, so concurrent callers in other
  processes agree on one row.
- `replace_tokens` is a compare-and-set on the stored auth token (row locked on PostgreSQL).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, select

from storage.crypto import TokenCipher
from storage.models import (
    ChannelProject,
    Plan,
    SlackEvent,
    TaigaLink,
    WriteLedger,
    utcnow,
)
from storage.plan_states import PLAN_STATES, Transition, move_for

# Columns that only the repository moves: the id, the state (via transition_plan) and version.
_PLAN_FIELDS = frozenset(Plan.model_fields)
_PLAN_GUARDED = frozenset({"id", "state", "version"})


# ---------------------------------------------------------------------------------------------
# value objects


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """A Taiga token pair in plaintext; never shown in reprs."""

    auth_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TaigaLinkView:
    """A linked account with its tokens decrypted; never shows the tokens in reprs."""

    id: int
    team_id: str
    user_id: str
    taiga_user_id: int
    taiga_username: str
    auth_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    created_at: datetime
    updated_at: datetime

    @property
    def tokens(self) -> StoredTokens:
        return StoredTokens(auth_token=self.auth_token, refresh_token=self.refresh_token)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One write of a plan. `claimed_now` is True only for the caller whose insert created it."""

    plan_id: str
    action_key: str
    state: str
    taiga_id: int | None
    taiga_ref: int | None
    attempted_at: datetime
    done_at: datetime | None
    actor_taiga_id: int | None = None
    claimed_now: bool = False

    @property
    def done(self) -> bool:
        return self.state == "done"


# ---------------------------------------------------------------------------------------------
# helpers


_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert_unless_present(session: Session, row: SQLModel, *, key: Collection[str]) -> bool:
    """Insert `row` unless a row with the same `key` columns exists; True iff it was inserted.

    Any other refusal (a foreign key, another unique key) still raises `IntegrityError`.
    """
    statement = _insert(session, row).on_conflict_do_nothing(index_elements=list(key))
    # RETURNING, not rowcount: SQLAlchemy reports -1 as an INSERT's rowcount on psycopg.
    inserted = session.execute(statement.returning(sa.literal(True))).first()
    return inserted is not None


def _upsert(
    session: Session, row: SQLModel, *, key: Collection[str], changes: Mapping[str, Any]
) -> None:
    """Insert `row`, or apply `changes` to the row that already holds its `key` columns."""
    statement = _insert(session, row)
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in changes}
    )
    session.execute(statement)


def _insert(session: Session, row: SQLModel) -> sqlite.Insert | postgresql.Insert:
    """`INSERT` of `row`'s columns in the session's SQL dialect (a key left unset is generated)."""
    table = row.__table__  # type: ignore[attr-defined]
    values = {
        column.key: getattr(row, column.key)
        for column in table.columns
        if not (column.primary_key and getattr(row, column.key) is None)
    }
    dialect = session.get_bind().dialect.name
    return _INSERTS[dialect](type(row)).values(values)


def _link_row(session: Session, team_id: str, user_id: str) -> TaigaLink | None:
    statement = (
        select(TaigaLink)
        .where(TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def _link_view(row: TaigaLink, cipher: TokenCipher) -> TaigaLinkView:
    assert row.id is not None
    return TaigaLinkView(
        id=row.id,
        team_id=row.slack_team_id,
        user_id=row.slack_user_id,
        taiga_user_id=row.taiga_user_id,
        taiga_username=row.taiga_username,
        auth_token=cipher.decrypt(row.auth_token_enc),
        refresh_token=(
            cipher.decrypt(row.refresh_token_enc) if row.refresh_token_enc is not None else None
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _entry(row: WriteLedger, *, claimed_now: bool = False) -> LedgerEntry:
    return LedgerEntry(
        plan_id=row.plan_id,
        action_key=row.action_key,
        state=row.state,
        taiga_id=row.taiga_id,
        taiga_ref=row.taiga_ref,
        attempted_at=row.attempted_at,
        done_at=row.done_at,
        actor_taiga_id=row.actor_taiga_id,
        claimed_now=claimed_now,
    )


def _check_plan_changes(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _PLAN_FIELDS
    if unknown:
        raise TypeError(f"Plan has no field(s) {sorted(unknown)}")
    guarded = set(changes) & _PLAN_GUARDED
    if guarded:
        raise TypeError(f"{sorted(guarded)} cannot be changed here (use transition_plan)")


# ---------------------------------------------------------------------------------------------
# links


def save_link(
    session: Session,
    *,
    cipher: TokenCipher,
    team_id: str,
    user_id: str,
    taiga_user_id: int,
    taiga_username: str,
    tokens: StoredTokens,
) -> TaigaLinkView:
    """Create or replace the user's link; the tokens are stored encrypted only."""
    now = utcnow()
    changes: dict[str, Any] = {
        "taiga_user_id": taiga_user_id,
        "taiga_username": taiga_username,
        "auth_token_enc": cipher.encrypt(tokens.auth_token),
        "refresh_token_enc": (
            cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None
        ),
        "updated_at": now,
    }
    _upsert(
        session,
        TaigaLink(slack_team_id=team_id, slack_user_id=user_id, created_at=now, **changes),
        key=["slack_team_id", "slack_user_id"],
        changes=changes,
    )
    row = _link_row(session, team_id, user_id)
    assert row is not None
    return _link_view(row, cipher)


def get_link(
    session: Session, *, cipher: TokenCipher, team_id: str, user_id: str
) -> TaigaLinkView | None:
    statement = select(TaigaLink).where(
        TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id
    )
    row = session.exec(statement.execution_options(populate_existing=True)).first()
    return _link_view(row, cipher) if row is not None else None


def delete_link(session: Session, *, team_id: str, user_id: str) -> bool:
    """Forget the user's link; True if there was one."""
    result = session.execute(
        sa.delete(TaigaLink)
        .where(TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount > 0  # type: ignore[attr-defined]


def replace_tokens(
    session: Session,
    *,
    cipher: TokenCipher,
    team_id: str,
    user_id: str,
    expected_auth_token: str,
    tokens: StoredTokens,
) -> bool:
    """Store `tokens` only if the stored auth token is still `expected_auth_token`.

    False means someone else refreshed (or unlinked) first: re-read with `get_link`.
    """
    row = _link_row(session, team_id, user_id)
    if row is None:
        return False
    current = cipher.decrypt(row.auth_token_enc)
    if not hmac.compare_digest(current.encode("utf-8"), expected_auth_token.encode("utf-8")):
        return False
    row.auth_token_enc = cipher.encrypt(tokens.auth_token)
    row.refresh_token_enc = cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return True


def rotate_all_tokens(session: Session, *, cipher: TokenCipher) -> int:
    """Re-encrypt every stored token under the cipher's first key; returns the links rewritten."""
    rows = session.exec(
        select(TaigaLink)
        .order_by(TaigaLink.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for row in rows:
        row.auth_token_enc = cipher.rotate(row.auth_token_enc)
        if row.refresh_token_enc is not None:
            row.refresh_token_enc = cipher.rotate(row.refresh_token_enc)
        session.add(row)
    session.flush()
    return len(rows)


# ---------------------------------------------------------------------------------------------
# channel project


def _channel_row(session: Session, team_id: str, channel_id: str) -> ChannelProject | None:
    return session.get(ChannelProject, (team_id, channel_id), populate_existing=True)


def set_channel_project(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    project_id: int,
    project_slug: str,
    project_name: str,
    set_by: str,
) -> ChannelProject:
    """Set (or replace) the channel's default project (one race-safe upsert)."""
    changes: dict[str, Any] = {
        "project_id": project_id,
        "project_slug": project_slug,
        "project_name": project_name,
        "set_by": set_by,
        "updated_at": utcnow(),
    }
    _upsert(
        session,
        ChannelProject(slack_team_id=team_id, slack_channel_id=channel_id, **changes),
        key=["slack_team_id", "slack_channel_id"],
        changes=changes,
    )
    row = _channel_row(session, team_id, channel_id)
    assert row is not None
    return row


def get_channel_project(
    session: Session, *, team_id: str, channel_id: str
) -> ChannelProject | None:
    return _channel_row(session, team_id, channel_id)


# ---------------------------------------------------------------------------------------------
# plans


class IdempotencyKeyTaken(Exception):
    """Another plan already holds this idempotency key (a concurrent request stored it first)."""


def create_plan(session: Session, **fields: Any) -> Plan:
    """Insert a plan (state defaults to drafting, version to 1) and return it.

    Raises `IdempotencyKeyTaken` when `idempotency_key` is already another plan's.
    """
    unknown = set(fields) - _PLAN_FIELDS
    if unknown:
        raise TypeError(f"Plan has no field(s) {sorted(unknown)}")
    state = fields.get("state", "drafting")
    if state not in PLAN_STATES:
        raise ValueError(f"unknown plan state {state!r}")
    plan = Plan(**fields)
    key = plan.idempotency_key
    if key is None:
        session.add(plan)
        session.flush()
        return plan
    if not _insert_unless_present(session, plan, key=["idempotency_key"]):
        raise IdempotencyKeyTaken(key)
    stored = get_plan(session, plan.id)
    assert stored is not None
    return stored


def plan_for_idempotency_key(session: Session, *, key: str) -> Plan | None:
    statement = select(Plan).where(Plan.idempotency_key == key)
    return session.exec(statement.execution_options(populate_existing=True)).first()


def get_plan(session: Session, plan_id: str) -> Plan | None:
    return session.get(Plan, plan_id, populate_existing=True)


def transition_plan(
    session: Session,
    *,
    plan_id: str,
    transition: Transition,
    expected_version: int | None = None,
    **changes: Any,
) -> bool:
    """Make `transition`: move the plan to its target state only if it is in one of its source
    states (and, with `expected_version`, still at that version: nobody touched it since it was
    read); True iff it moved. Raises `IllegalTransition` for a move not in the table.

    One conditional UPDATE (a compare-and-set), so among concurrent callers - other threads,
    other replicas - exactly one wins. Bumps `version`; `changes` are applied in the same UPDATE.
    """
    move = move_for(transition)
    _check_plan_changes(changes)
    changes.setdefault("updated_at", utcnow())
    statement = (
        sa.update(Plan)
        .where(Plan.id == plan_id, Plan.state.in_(sorted(move.sources)))  # type: ignore[attr-defined]
        .values(state=move.target, version=Plan.version + 1, **changes)
        .execution_options(synchronize_session=False)
    )
    if expected_version is not None:
        statement = statement.where(Plan.version == expected_version)  # type: ignore[arg-type]
    moved = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
    if moved:
        _reload(session, Plan, plan_id)
    return moved


def plans_to_sweep(
    session: Session,
    *,
    approved_before: datetime,
    executing_before: datetime,
    expired_by: datetime,
    interrupted_error: str | None = None,
    limit: int = 20,
) -> list[Plan]:
    """The Slack plans a recovery sweep must act on, least recently touched first, at most
    `limit`:

    - `approved` and not touched since `approved_before` (its apply never started),
    - `executing` and not touched since `executing_before` (its run died),
    - `partial` with error `interrupted_error`, not touched since `approved_before` (a shutdown
      cancelled its run before it could show anything),
    - `proposed` whose `expires_at` is at or before `expired_by`.

    Plans without a Slack message (HTTP API, CLI) are never included.
    """
    due = [
        sa.and_(Plan.state == "approved", Plan.updated_at < approved_before),
        sa.and_(Plan.state == "executing", Plan.updated_at < executing_before),
        sa.and_(Plan.state == "proposed", Plan.expires_at <= expired_by),  # type: ignore[operator]
    ]
    if interrupted_error is not None:
        due.append(
            sa.and_(
                Plan.state == "partial",
                Plan.error == interrupted_error,
                Plan.updated_at < approved_before,
            )
        )
    statement = (
        select(Plan)
        .where(Plan.slack_message_ts.is_not(None), sa.or_(*due))  # type: ignore[union-attr]
        .order_by(Plan.updated_at, Plan.id)  # type: ignore[arg-type]
        .limit(max(0, limit))
        .execution_options(populate_existing=True)
    )
    return list(session.exec(statement).all())


def update_plan(session: Session, *, plan_id: str, **changes: Any) -> bool:
    """Change fields of a plan without moving its state (bumps version); True if it exists."""
    _check_plan_changes(changes)
    changes.setdefault("updated_at", utcnow())
    statement = (
        sa.update(Plan)
        .where(Plan.id == plan_id)  # type: ignore[arg-type]
        .values(version=Plan.version + 1, **changes)
        .execution_options(synchronize_session=False)
    )
    updated = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
    if updated:
        _reload(session, Plan, plan_id)
    return updated


def _reload(session: Session, model: type[Any], key: Any) -> None:
    """Reload a row this session already holds after a bulk UPDATE changed it underneath."""
    cached = session.identity_map.get(sa.inspect(model).identity_key_from_primary_key([key]))
    if cached is not None:
        session.refresh(cached)


# ---------------------------------------------------------------------------------------------
# write ledger


def _ledger_rows(
    session: Session, plan_id: str, action_keys: Collection[str]
) -> dict[str, WriteLedger]:
    statement = (
        select(WriteLedger)
        .where(
            WriteLedger.plan_id == plan_id,
            WriteLedger.action_key.in_(list(action_keys)),  # type: ignore[attr-defined]
        )
        .execution_options(populate_existing=True)
    )
    return {row.action_key: row for row in session.exec(statement).all()}


def _ledger_row(session: Session, plan_id: str, action_key: str) -> WriteLedger | None:
    statement = (
        select(WriteLedger)
        .where(WriteLedger.plan_id == plan_id, WriteLedger.action_key == action_key)
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def claim_actions(
    session: Session,
    *,
    plan_id: str,
    action_keys: Sequence[str],
    now: datetime,
    actor: int,
) -> dict[str, LedgerEntry]:
    """Record each action as pending, sent by Taiga user `actor`, unless it is already recorded;
    returns the rows by key. One transaction for a whole phase of writes.

    `claimed_now` tells the one caller whose insert created a row; everyone else gets the
    existing row (pending: a previous attempt may have reached Taiga; done: skip it).
    """
    existing = _ledger_rows(session, plan_id, action_keys)
    entries: dict[str, LedgerEntry] = {}
    for key in action_keys:
        row = existing.get(key)
        if row is None:
            entries[key] = _claim_one(session, plan_id, key, now, actor)
        else:
            entries[key] = _entry(row)
    return entries


def _claim_one(
    session: Session, plan_id: str, action_key: str, now: datetime, actor: int
) -> LedgerEntry:
    row = WriteLedger(
        plan_id=plan_id,
        action_key=action_key,
        state="pending",
        attempted_at=now,
        actor_taiga_id=actor,
    )
    if _insert_unless_present(session, row, key=["plan_id", "action_key"]):
        return _entry(row, claimed_now=True)
    existing = _ledger_row(session, plan_id, action_key)  # inserted by a concurrent caller
    assert existing is not None
    return _entry(existing)


def retake_actions(
    session: Session,
    *,
    plan_id: str,
    action_keys: Collection[str],
    now: datetime,
    actor: int,
) -> list[LedgerEntry]:
    """Stamp pending actions that are about to be sent again with the new attempt's time and
    sender (the caller found no trace of the earlier attempt in Taiga); returns those rows."""
    rows = session.exec(
        select(WriteLedger)
        .where(
            WriteLedger.plan_id == plan_id,
            WriteLedger.action_key.in_(list(action_keys)),  # type: ignore[attr-defined]
            WriteLedger.state == "pending",
        )
        .order_by(WriteLedger.id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for row in rows:
        row.attempted_at = now
        row.actor_taiga_id = actor
        session.add(row)
    session.flush()
    return [_entry(row) for row in rows]


def complete_action(
    session: Session,
    *,
    plan_id: str,
    action_key: str,
    taiga_id: int | None,
    taiga_ref: int | None,
    now: datetime,
) -> LedgerEntry:
    """Mark a claimed action done with the Taiga object it created."""
    row = _ledger_row(session, plan_id, action_key)
    if row is None:
        raise LookupError(f"action {action_key!r} of plan {plan_id} was never claimed")
    row.state = "done"
    row.taiga_id = taiga_id
    row.taiga_ref = taiga_ref
    row.done_at = now
    session.add(row)
    session.flush()
    return _entry(row)


def ledger_for_plan(session: Session, plan_id: str) -> dict[str, LedgerEntry]:
    """Every recorded action of the plan by action key, in claim order."""
    statement = (
        select(WriteLedger)
        .where(WriteLedger.plan_id == plan_id)
        .order_by(WriteLedger.id)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    return {row.action_key: _entry(row) for row in session.exec(statement).all()}


# ---------------------------------------------------------------------------------------------
# slack events


def first_delivery(session: Session, *, event_id: str, now: datetime) -> bool:
    """True only the first time this event id is seen (Slack retries get False)."""
    row = SlackEvent(event_id=event_id, received_at=now)
    return _insert_unless_present(session, row, key=["event_id"])


def prune_slack_events(session: Session, *, before: datetime) -> int:
    """Forget event ids received before `before` (Slack retries within minutes)."""
    result = session.execute(
        sa.delete(SlackEvent)
        .where(SlackEvent.received_at < before)  # type: ignore[arg-type]
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
