"""Approve / Reject / Retry on a proposal: who may decide, exactly once, and the result.

Every change of state is a compare-and-set (`transition_plan`), so double clicks, Slack's
retries and several replicas still decide and apply a plan once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.executor import ExecutionResult, apply_plan
from agent.executor.lease import LeaseTiming
from agent.identity import LinkExpired
from agent.progress import Step
from agent.proposal import Proposal
from agent.settings import Approvers
from agent.tools import STORY_AND_TASK_PERMISSIONS, permissions_to_apply
from bot import blocks
from bot.blocks.kit import SlackMessage
from bot.services.accounts import tell_link_expired
from bot.services.core import Services
from bot.services.errors import NOT_LINKED, explain, is_link_expired, log_failure
from bot.services.home import refresh_plan_homes
from bot.services.live_progress import live_progress
from bot.services.slack_io import Tell, esc, update
from bot.services.streaming import Recipient
from bot.services.versions import plan_summary
from storage import repositories as repo
from storage.models import Plan
from storage.plan_states import MOVES, Transition
from taiga.client import TaigaSession
from taiga.errors import TaigaError
from taiga.models import Project

logger = logging.getLogger(__name__)

# Retry resumes a partly applied plan; on an approved or executing one the executor decides
# (another run active: "being applied right now"; a run that died: it takes over).
RETRYABLE_STATES = frozenset({"partial", "approved", "executing"})
PLAN_GONE = "This plan no longer exists."
OTHER_CHANNEL = (
    "This button belongs to a plan in another channel, so nothing was done. Use the buttons on "
    "the plan's own message."
)
NOTHING_PICKED = (
    "Every story and task of this plan is unticked, so there is nothing to write. Tick what "
    "should be created, or reject the plan."
)


@dataclass(frozen=True, slots=True)
class Decision:
    """A click on a plan's button; `version` is the proposal version it was shown with (None on
    messages from before versions)."""

    plan_id: str
    version: int | None
    team_id: str
    user_id: str
    link: repo.TaigaLinkView | None
    tell: Tell
    # The channel the click came from; None for a decision made on the plan itself (refining).
    channel_id: str | None = None


async def _load(services: Services, plan_id: str) -> Plan | None:
    return await services.db.run(lambda s: repo.get_plan(s, plan_id))


async def clicked_plan(services: Services, decision: Decision) -> Plan | None:
    """The plan a click is about, if it exists in the clicker's workspace and the click came
    from the plan's own channel; otherwise tells the clicker why not."""
    plan = await _load(services, decision.plan_id)
    if plan is None or plan.slack_team_id != decision.team_id:
        await decision.tell(PLAN_GONE)
        return None
    if decision.channel_id is not None and decision.channel_id != plan.slack_channel_id:
        logger.warning("plan %s: a click from another channel refused", plan.id)
        await decision.tell(OTHER_CHANNEL)
        return None
    return plan


async def open_proposal(services: Services, decision: Decision) -> Plan | None:
    """The plan if it still waits for a decision; otherwise tells the clicker why not."""
    plan = await clicked_plan(services, decision)
    if plan is None:
        return None
    if is_past_expiry(services, plan):
        await expire_proposal(services, plan)
        plan = await _load(services, decision.plan_id)
        assert plan is not None
    if plan.state != "proposed":
        await show_stored_result(services, plan)
        await decision.tell(_closed_sentence(services, plan))
        return None
    if not _is_current(plan, decision):
        await decision.tell(_replaced_sentence(plan))
        return None
    return plan


def _is_current(plan: Plan, decision: Decision) -> bool:
    return decision.version is None or decision.version == plan.proposal_version


def _replaced_sentence(plan: Plan) -> str:
    return (
        f"This version of the plan was replaced by a newer version (version "
        f"{plan.proposal_version}); nothing was done. Use the buttons on the newest version in "
        "this thread."
    )


def _closed_sentence(services: Services, plan: Plan) -> str:
    by = f" by <@{plan.decided_by}>" if plan.decided_by else ""
    if plan.state == "expired":
        hours = services.settings.plan_expiry_hours
        return (
            f"This proposal expired (proposals wait {hours:g} hours). "
            "Ask for a new plan to start again."
        )
    if plan.state == "rejected":
        return f"This proposal was already rejected{by}."
    if plan.state in {"approved", "executing", "done", "partial"}:
        return f"This proposal was already approved{by}."
    if plan.state in {"undoing", "undone", "undo_partial"}:
        return "This plan was applied and then undone."
    return "This proposal can no longer be decided."


def is_past_expiry(services: Services, plan: Plan) -> bool:
    """A proposal nobody decided before its `expires_at` (the sweep may not have marked it yet)."""
    return plan.state == "proposed" and plan.expires_at is not None and (
        services.now() >= plan.expires_at
    )


async def expire_proposal(services: Services, plan: Plan) -> None:
    """Move a proposal past its time to `expired` (once) and show that in its message."""
    moved = await services.db.run(
        lambda s: repo.transition_plan(s, plan_id=plan.id, transition=Transition.EXPIRE)
    )
    if moved and plan.slack_message_ts:
        logger.info("plan %s: expired", plan.id)
        message = blocks.expired_blocks(summary=plan_summary(plan))
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )


def _required(plan: Plan) -> frozenset[str]:
    needed = frozenset(STORY_AND_TASK_PERMISSIONS)
    if plan.proposal is None:
        return needed
    return permissions_to_apply(Proposal.model_validate(plan.proposal)) or needed


@dataclass(frozen=True, slots=True)
class Approver:
    """An allowed decider's Taiga session and the plan's project as they see it."""

    session: TaigaSession
    project: Project


async def may_approve(services: Services, plan: Plan, decision: Decision) -> Approver | None:
    """The clicker as an allowed decider holding the permissions, else tells them why not.

    PLAN_APPROVERS=requester: only the requester decides; =writers: anyone holding the write
    permissions the plan needs, checked in Taiga with their own token."""
    is_requester = decision.user_id == plan.requester_slack_id
    writers = services.settings.plan_approvers == Approvers.WRITERS
    if not is_requester and not writers:
        await decision.tell(f"Only <@{plan.requester_slack_id}> can approve this.")
        return None
    if decision.link is None:
        await decision.tell(NOT_LINKED)
        return None
    session = services.refresher.session(decision.link)
    required = _required(plan)
    try:
        project = await session.get_project(plan.project_id)
    except (TaigaError, LinkExpired) as error:
        log_failure("checking the approver's permissions failed", error, plan_id=plan.id)
        await decision.tell(esc(explain(error, project=plan.project_slug)))
        if is_link_expired(error):
            await tell_link_expired(services, user_id=decision.user_id, text=explain(error))
        return None
    missing = sorted(required - project.my_permissions)
    if missing:
        await decision.tell(
            f"You cannot apply this plan: your role in *{esc(project.name)}* lacks "
            f"{', '.join(f'`{p}`' for p in missing)}."
            + ("" if is_requester else f" Only <@{plan.requester_slack_id}> or a member who "
               "can create these items can approve it.")
        )
        return None
    return Approver(session, project)


async def may_decide(services: Services, plan: Plan, decision: Decision) -> TaigaSession | None:
    approver = await may_approve(services, plan, decision)
    return approver.session if approver else None


async def _decide(
    services: Services, plan: Plan, decision: Decision, transition: Transition
) -> bool:
    """Make `transition` (approve or reject) exactly once (compare-and-set); a clicker who lost
    the race is told who decided first."""
    moved = await services.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan.id, transition=transition, decided_by=decision.user_id,
            expected_proposal_version=decision.version,
        )
    )
    if not moved:
        latest = await _load(services, plan.id) or plan
        if latest.state == "proposed":
            await decision.tell(_replaced_sentence(latest))
        else:
            await decision.tell(_closed_sentence(services, latest))
        return False
    logger.info("plan %s: %s by %s", plan.id, MOVES[transition].target, decision.user_id)
    return True


async def approve(services: Services, decision: Decision) -> None:
    plan = await open_proposal(services, decision)
    if plan is None:
        return
    if plan.proposal is not None and Proposal.model_validate(plan.proposal).is_empty:
        await decision.tell(NOTHING_PICKED)
        return
    session = await may_decide(services, plan, decision)
    if session is None:
        return
    if not await _decide(services, plan, decision, Transition.APPROVE):
        return
    await _apply(services, plan, decision, session)


async def retry(services: Services, decision: Decision) -> None:
    plan = await clicked_plan(services, decision)
    if plan is None:
        return
    if plan.state == "done":
        await show_stored_result(services, plan)
        await decision.tell("Everything in this plan has been created already.")
        return
    if plan.state not in RETRYABLE_STATES:
        await decision.tell(_closed_sentence(services, plan))
        return
    session = await may_decide(services, plan, decision)
    if session is None:
        return
    logger.info("plan %s: retry by %s", plan.id, decision.user_id)
    await _apply(services, plan, decision, session, retrying=True)


async def reject(services: Services, decision: Decision) -> None:
    plan = await open_proposal(services, decision)
    if plan is None:
        return
    if decision.user_id != plan.requester_slack_id:
        if await may_decide(services, plan, decision) is None:
            return
    if not await _decide(services, plan, decision, Transition.REJECT):
        return
    if plan.slack_message_ts:
        message = blocks.rejected_blocks(decision.user_id, summary=plan_summary(plan))
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )


@dataclass(frozen=True, slots=True)
class ApplyRun:
    """Who applies a plan and what its message shows while and after it is applied.

    `actor`'s Taiga session writes (a dead link is told to them by direct message) as the Taiga
    user `actor_taiga_id` (from their link, so the executor need not ask Taiga); `approver` is
    named in the result; `first_line` heads the status, shown at once with `show_at_once`,
    else with the executor's first progress (so a run that finds the plan busy changes nothing);
    `explain_failure` is the plain sentence shown with Retry when the apply fails."""

    actor: str
    actor_taiga_id: int
    approver: str
    first_line: str
    explain_failure: Callable[[Exception], str]
    show_at_once: bool = True


async def _apply(
    services: Services, plan: Plan, decision: Decision, session: TaigaSession,
    *, retrying: bool = False,
) -> None:
    """Apply and show the result; a Retry shows its status only once the executor writes, so a
    Retry of a plan another run holds leaves the message (and its button) as it is."""
    assert decision.link is not None  # `may_decide` gave a session, so the clicker is linked
    run = ApplyRun(
        actor=decision.user_id,
        actor_taiga_id=decision.link.taiga_user_id,
        approver=decision.user_id,
        first_line=f"Approved by {await display_name(services, decision.user_id)}; "
        "writing to Taiga…",
        explain_failure=lambda error: explain(error, project=plan.project_slug),
        show_at_once=not retrying,
    )
    result = await apply_and_show(services, plan, session, run)
    if result is not None and result.state == "executing":
        await decision.tell("This plan is being applied right now.")


async def apply_and_show(
    services: Services, plan: Plan, session: TaigaSession, run: ApplyRun
) -> ExecutionResult | None:
    """Apply the plan through the executor (exactly once), its steps shown live (streamed in a
    reply, else in the plan's message), then show the result in the plan's message. Returns
    the result (state `executing`: another run holds the plan and nothing was shown), or None
    after a failure shown with Retry."""
    assert plan.slack_message_ts is not None
    title = f"Applying the plan of {plan.target_sprint} in Taiga"
    first = Step("approved", run.first_line, status="complete")
    live = live_progress(
        services, channel=plan.slack_channel_id, thread_ts=plan.slack_thread_ts, title=title,
        recipient=Recipient(team_id=plan.slack_team_id, user_id=run.actor),
        status_ts=plan.slack_message_ts, steps=() if run.show_at_once else (first,),
        announce=blocks.status_blocks([run.first_line], title),
    )
    if run.show_at_once:
        await live.step(first)
    try:
        result = await apply_plan(
            db=services.db, plan_id=plan.id, taiga=session,
            web_url=services.settings.taiga_web_url, progress=live.step, now=services.now,
            lease=LeaseTiming.from_settings(services.settings),
            actor_id=run.actor_taiga_id,
            concurrency=services.settings.taiga_write_concurrency,
        )
    except Exception as error:
        log_failure("applying the plan failed", error, plan_id=plan.id)
        sentence = run.explain_failure(error)
        await live.fail(sentence, blocks.error_blocks(sentence, retry_plan_id=plan.id))
        if is_link_expired(error):
            await tell_link_expired(services, user_id=run.actor, text=explain(error))
        return None
    if result.state == "executing":
        await live.abandon()  # another run holds the plan and shows its progress
        return result
    await live.finish(await _result_message(services, plan, result, run.approver))
    _plan_ended(services, plan, result, run.approver)
    return result


async def show_stored_result(services: Services, plan: Plan) -> bool:
    """Show a finished plan's stored result in its message again (the first post may have
    failed, or the process stopped before it); True if there was one to show."""
    if plan.state not in {"done", "partial"} or plan.result is None or not plan.slack_message_ts:
        return False
    result = ExecutionResult.model_validate(plan.result)
    await _show_result(services, plan, result, plan.decided_by or plan.requester_slack_id)
    return True


async def _show_result(
    services: Services, plan: Plan, result: ExecutionResult, approver: str | None
) -> None:
    assert plan.slack_message_ts is not None
    message = await _result_message(services, plan, result, approver)
    await update(
        services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
        **message.as_kwargs(),
    )
    _plan_ended(services, plan, result, approver)


async def _result_message(
    services: Services, plan: Plan, result: ExecutionResult, approver: str | None
) -> SlackMessage:
    history = await services.db.run(lambda s: repo.revisions_of(s, plan.id))
    return blocks.result_blocks(
        result, approver_id=approver, history=history, approved_version=plan.proposal_version,
        undo_minutes=services.settings.plan_undo_minutes,
    )


def _plan_ended(
    services: Services, plan: Plan, result: ExecutionResult, approver: str | None
) -> None:
    """Log the outcome and refresh the Home tabs that list the plan."""
    logger.info(
        "plan %s: %s (%d created, %d missing)",
        plan.id, result.state, len(result.created), len(result.failed),
    )
    refresh_plan_homes(services, plan, approver)


async def show_retry(services: Services, plan: Plan, sentence: str) -> None:
    """The plan's message becomes `sentence` with a Retry button."""
    assert plan.slack_message_ts is not None
    message = blocks.error_blocks(sentence, retry_plan_id=plan.id)
    await update(
        services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
        **message.as_kwargs(),
    )



async def display_name(services: Services, user_id: str) -> str:
    """"@name" of a Slack user, for plain text."""
    names = await services.directory.user_names(f"<@{user_id}>")
    return "@" + names.get(user_id, user_id)

