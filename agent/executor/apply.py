"""Applying a stored, approved plan: the entry points and the plan's state around a run.

`apply_plan` moves the plan `approved|partial -> executing` under a lease (one conditional
update, so only one apply runs; a run whose lease lapsed is taken over), runs the phases while
its heartbeat renews the lease, and moves it `executing -> done|partial` with the result, only
if it still holds the lease. `record_approved_plan` stores a plan that is
approved as it is proposed (HTTP API, CLI). The caller moves other plans `proposed -> approved`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from agent.executor.lease import DEFAULT_TIMING, Heartbeat, LeaseLost, LeaseTiming, take_plan
from agent.executor.ledger import Ledger, Now
from agent.executor.limiter import AdaptiveLimit
from agent.executor.phases import run_phases
from agent.executor.reconcile import DEFAULT_CLOCK_SKEW, Reconciler
from agent.executor.result import ExecutionResult, build_result
from agent.executor.run import ApplyRun
from agent.executor.writes import writes_of
from agent.plan_rows import PlanSnapshot, load_plan
from agent.progress import Progress
from agent.proposal import Proposal
from storage import repositories as repo
from storage.db import Database
from storage.models import utcnow
from storage.plan_states import Transition
from taiga.client import TaigaSession

log = logging.getLogger(__name__)

_INTERRUPTED = "Interrupted: {}"
# Stored as the plan's error when a shutdown cancels an apply; the bot's sweep resumes those.
INTERRUPTED_BY_SHUTDOWN = _INTERRUPTED.format(asyncio.CancelledError.__name__)

# The most writes of one apply on the wire at once (TAIGA_WRITE_CONCURRENCY); the limit adapts
# below it when Taiga throttles (`limiter.py`).
DEFAULT_CONCURRENCY = 16


class PlanNotFound(LookupError):
    """No plan with this id."""


class PlanNotApproved(RuntimeError):
    """The plan is in a state that cannot be applied (not approved, rejected, expired, ...)."""

    def __init__(self, plan_id: str, state: str) -> None:
        super().__init__(f"Plan {plan_id} is {state}, so it cannot be applied.")
        self.plan_id = plan_id
        self.state = state


async def record_approved_plan(
    db: Database,
    proposal: Proposal,
    *,
    minutes: str,
    decided_by: str,
    slack_team_id: str = "",
    slack_channel_id: str = "",
    slack_thread_ts: str = "",
    idempotency_key: str | None = None,
    request_digest: str | None = None,
) -> str:
    """Store a plan that is approved as it is proposed (HTTP API, CLI); returns its id.

    It goes `proposed -> approved` like any plan, so `apply_plan` and its ledger treat it the same.
    Raises `storage.repositories.IdempotencyKeyTaken` if another plan holds `idempotency_key`.
    """
    digest = hashlib.sha256(minutes.encode("utf-8")).hexdigest()

    def store(session: Session) -> str:
        plan = repo.create_plan(
            session,
            slack_team_id=slack_team_id,
            slack_channel_id=slack_channel_id,
            slack_thread_ts=slack_thread_ts,
            project_id=proposal.project.id,
            project_slug=proposal.project.slug,
            target_sprint=proposal.target_sprint,
            minutes_digest=digest,
            state="proposed",
            proposal=proposal.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            request_digest=request_digest,
        )
        repo.transition_plan(
            session, plan_id=plan.id, transition=Transition.APPROVE, decided_by=decided_by
        )
        return plan.id

    return await db.run(store)


async def apply_plan(
    *,
    db: Database,
    plan_id: str,
    taiga: TaigaSession,
    web_url: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    now: Now = utcnow,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    lease: LeaseTiming = DEFAULT_TIMING,
    actor_id: int | None = None,
) -> ExecutionResult:
    """Apply the plan's stored proposal with the acting user's Taiga session, exactly once.

    `actor_id` is that session's Taiga user id when the caller knows it (a Slack link stores
    it); without it the executor asks Taiga (`users/me`) once, when it first needs it.

    The run holds the plan on a lease that its heartbeat renews (`agent.executor.lease`); a
    plan whose lease has lapsed (its run died) is taken over. Returns the stored result when
    the plan is already done, and a result in state `executing` (writing nothing more) when
    another run holds the plan, or took it over from this one. Raises `PlanNotFound`,
    `PlanNotApproved` for a plan that was never approved (or was rejected/expired), or
    `LeaseLost` when the run stopped because the database stayed unreachable for a lease.
    """
    plan = await load_plan(db, plan_id)
    if plan is None:
        raise PlanNotFound(f"No plan {plan_id}.")
    if plan.state == "done" and plan.result is not None:
        return ExecutionResult.model_validate(plan.result)
    heartbeat = await take_plan(
        db, plan_id, start=Transition.START_APPLY, take_over=Transition.TAKE_OVER_APPLY,
        timing=lease, now=now,
    )  # fmt: skip
    if heartbeat is None:
        return await _not_applied(db, plan_id, taiga, web_url, now)
    async with heartbeat:
        try:
            result = await _run(db, plan, taiga, web_url, heartbeat, now=now,
                                clock_skew=clock_skew, concurrency=concurrency,
                                progress=progress, actor_id=actor_id)  # fmt: skip
        except LeaseLost as lost:
            log.warning("%s; leaving the plan to the run that takes it over", lost)
            try:
                return await _not_applied(db, plan_id, taiga, web_url, now)
            except DBAPIError:
                raise lost from None  # the database is still away: say that, not its error
        except BaseException as error:  # never leave the plan stuck in executing
            await heartbeat.leave(
                Transition.FINISH_APPLY_PARTIAL, error=_INTERRUPTED.format(type(error).__name__)
            )
            raise
        stored = await heartbeat.leave(
            Transition.FINISH_APPLY if result.complete else Transition.FINISH_APPLY_PARTIAL,
            result=result.model_dump(mode="json"),
            error=None if result.complete else f"{len(result.failed)} item(s) not created.",
        )
    if not stored:
        log.warning("plan %s: another run took it over; this run's result is not stored", plan_id)
        return await _not_applied(db, plan_id, taiga, web_url, now)
    return result


async def _run(
    db: Database,
    plan: PlanSnapshot,
    taiga: TaigaSession,
    web_url: str,
    heartbeat: Heartbeat,
    *,
    now: Now,
    clock_skew: timedelta,
    concurrency: int,
    progress: Progress | None,
    actor_id: int | None,
) -> ExecutionResult:
    """Send the plan's writes as the lease holder (its proposal is fixed since Approve, so the
    plan as read before taking the lease holds); the result as the run leaves it, state
    `partial` until stored."""
    if plan.proposal is None:
        raise PlanNotApproved(plan.id, "empty")
    proposal = Proposal.model_validate(plan.proposal)
    run = await _open_run(
        db, plan.id, taiga, proposal, web_url,
        now=now, clock_skew=clock_skew, concurrency=concurrency, progress=progress,
        actor_id=actor_id, thread_link=plan.slack_permalink, lease=heartbeat,
    )  # fmt: skip
    writes = writes_of(proposal)
    await run_phases(run, writes)
    return build_result(run, writes, "partial")


async def _open_run(
    db: Database,
    plan_id: str,
    taiga: TaigaSession,
    proposal: Proposal,
    web_url: str,
    *,
    now: Now,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    concurrency: int = 1,
    progress: Progress | None = None,
    actor_id: int | None = None,
    thread_link: str | None = None,
    lease: Heartbeat | None = None,
) -> ApplyRun:
    ledger = await Ledger.load(db, plan_id, now, persist=lease.persist if lease else None)
    return ApplyRun(
        taiga=taiga,
        proposal=proposal,
        web_url=web_url,
        ledger=ledger,
        reconciler=Reconciler(ledger, now, clock_skew),
        limit=AdaptiveLimit(concurrency, sleep=taiga.client.clock.sleep),
        progress=progress,
        actor_id=actor_id,
        thread_link=thread_link,
        lease=lease,
    )


async def _not_applied(
    db: Database, plan_id: str, taiga: TaigaSession, web_url: str, now: Now
) -> ExecutionResult:
    """Another apply holds the plan (or it finished meanwhile): report, write nothing."""
    plan = await load_plan(db, plan_id)
    if plan is None:
        raise PlanNotFound(f"No plan {plan_id}.")
    if plan.state in {"done", "partial"} and plan.result is not None:
        return ExecutionResult.model_validate(plan.result)  # finished meanwhile by another run
    if plan.state != "executing" or plan.proposal is None:
        raise PlanNotApproved(plan.id, plan.state)
    proposal = Proposal.model_validate(plan.proposal)
    run = await _open_run(db, plan.id, taiga, proposal, web_url, now=now)
    if proposal.milestone is not None:
        run.milestone_id = proposal.milestone.existing_id
        run.milestone_slug = proposal.milestone.slug
    writes = writes_of(proposal)
    for write in writes.all():
        if (outcome := run.ledger.recorded(write)) is not None:
            run.remember(write, outcome)
            if write.kind == "milestone":
                run.milestone_id = outcome.id
        else:
            run.fail(write, "in progress: another apply of this plan is running", skipped=True)
    return build_result(run, writes, "executing")


# --------------------------------------------------------------------------- plan state
