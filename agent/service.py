"""Plan, then apply: the steps the HTTP API (`bot.api`) and the CLI (`agent.cli`) share.

Both callers treat the call itself as the approval (Slack asks a person in between, in steps of its
own). In order: `read_project` (once; its permissions decide what may be applied), `propose_plan`
(writes nothing), then `approve_and_apply`: check that planning finished (`PlanIncomplete`, unless
a partial plan is allowed) and that the approver's role allows every write (`PlanNotAllowed`),
store the plan as approved, and apply it exactly once through the executor's
write ledger. A plan that was partly applied is finished with `agent.executor.apply_plan`.
`undo_applied_plan` (Slack's Undo button and `python -m agent undo`) deletes what a plan created,
within `PLAN_UNDO_MINUTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from anthropic import AsyncAnthropic

from agent.budgets import Budgets
from agent.errors import PlanIncomplete, PlanNotAllowed
from agent.executor import (
    DEFAULT_CONCURRENCY,
    ExecutionResult,
    apply_plan,
    record_approved_plan,
)
from agent.executor.lease import DEFAULT_TIMING, LeaseTiming
from agent.loop import propose
from agent.progress import Progress
from agent.proposal import Proposal
from agent.settings import Settings
from agent.tools import permissions_to_apply
from agent.undo import UndoReport, undo_plan
from storage.db import Database
from storage.models import utcnow
from taiga.client import Clock, TaigaSession
from taiga.models import Project


@dataclass(frozen=True)
class Idempotency:
    """Makes a retry safe: the key the plan is stored under, and a digest of what was asked."""

    key: str
    request_digest: str


async def propose_plan(
    session: TaigaSession,
    project: Project,
    *,
    sprint_name: str,
    minutes: str,
    settings: Settings,
    anthropic: AsyncAnthropic,
    clock: Clock,
    progress: Progress | None = None,
) -> Proposal:
    """Plan `sprint_name` of `project` (read with this same session) from the minutes, within
    the model and budgets `settings` name; writes nothing."""
    return await propose(
        anthropic=anthropic,
        model=settings.anthropic_model,
        taiga=session,
        project_ref=project,
        sprint_name=sprint_name,
        minutes=minutes,
        budgets=Budgets.from_settings(settings),
        clock=clock,
        progress=progress,
    )


async def approve_and_apply(
    db: Database,
    proposal: Proposal,
    *,
    permissions: frozenset[str],
    minutes: str,
    decided_by: str,
    taiga: TaigaSession,
    web_url: str,
    idempotency: Idempotency | None = None,
    progress: Progress | None = None,
    allow_partial: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    lease: LeaseTiming = DEFAULT_TIMING,
    actor_id: int | None = None,
) -> ExecutionResult:
    """Store the proposal as approved by `decided_by` and apply it with `taiga`, the approver's
    session (`permissions`: their permissions in the project; `actor_id`: its Taiga user id if
    already known, `concurrency`: the most writes at once, `lease`: PLAN_LEASE_SECONDS and
    PLAN_HEARTBEAT_SECONDS).

    Raises, before anything is stored, `PlanIncomplete` if planning stopped early and
    `allow_partial` is not set, and `PlanNotAllowed` if their role lacks a permission the
    writes need; `storage.repositories.IdempotencyKeyTaken` if another plan holds the key.
    """
    require_finished(proposal, allow_partial=allow_partial)
    require_permissions(proposal, permissions)
    plan_id = await record_approved_plan(
        db,
        proposal,
        minutes=minutes,
        decided_by=decided_by,
        idempotency_key=idempotency.key if idempotency else None,
        request_digest=idempotency.request_digest if idempotency else None,
    )
    return await apply_plan(
        db=db,
        plan_id=plan_id,
        taiga=taiga,
        web_url=web_url,
        progress=progress,
        concurrency=concurrency,
        lease=lease,
        actor_id=actor_id,
    )


def require_permissions(proposal: Proposal, permissions: frozenset[str]) -> None:
    """Raise `PlanNotAllowed` if `permissions` (the approver's in the project) lack one that the
    proposal's writes need."""
    lacking = permissions_to_apply(proposal) - permissions
    if lacking:
        raise PlanNotAllowed(lacking)


def require_finished(proposal: Proposal, *, allow_partial: bool) -> None:
    """Raise `PlanIncomplete` if planning stopped before the model finished, unless a partial
    plan is allowed."""
    if proposal.stopped is not None and not allow_partial:
        raise PlanIncomplete(proposal)


async def undo_applied_plan(
    db: Database,
    plan_id: str,
    *,
    taiga: TaigaSession,
    settings: Settings,
    now: Callable[[], datetime] = utcnow,
    actor_id: int | None = None,
) -> UndoReport:
    """Undo the plan with `taiga`, the undoer's own session, within `PLAN_UNDO_MINUTES` of its
    apply; raises `agent.undo.UndoRefused` with a plain sentence when it cannot."""
    return await undo_plan(
        db=db,
        plan_id=plan_id,
        taiga=taiga,
        window=timedelta(minutes=settings.plan_undo_minutes),
        now=now,
        lease=LeaseTiming.from_settings(settings),
        actor_id=actor_id,
    )
