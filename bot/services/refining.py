"""Refining a proposal in its thread: a mention with an instruction makes the next version.

Only people who may approve the plan may refine it (`decisions.may_approve`, which also gives
their own Taiga session and the project they see, so their permissions gate the tools as in
planning). A status message in
the thread shows the progress and ends with what happened: the revised plan published as the next
version (`versions.publish_version`), no change, or a plain sentence saying why not.
"""

from __future__ import annotations

import logging

from agent.budgets import Budgets
from agent.progress import Step
from agent.proposal import Proposal
from agent.refine import refine, same_plan
from bot import blocks
from bot.services.accounts import tell_link_expired
from bot.services.core import Services
from bot.services.decisions import Decision, may_approve
from bot.services.errors import explain, is_link_expired, log_failure
from bot.services.live_progress import LiveProgress, live_progress
from bot.services.slack_io import Tell, esc
from bot.services.streaming import Recipient
from bot.services.versions import SOMEONE_ELSE_CHANGED_IT, publish_version
from storage import repositories as repo
from storage.models import Plan

logger = logging.getLogger(__name__)

INSTRUCTION_MAX = 2000


def instruction_too_long(length: int) -> str:
    return (
        f"That instruction is {length:,} characters long; the limit is {INSTRUCTION_MAX:,}. "
        "Say the change in fewer words, or edit the plan."
    )


async def refine_plan(
    services: Services,
    plan: Plan,
    *,
    user_id: str,
    instruction: str,
    link: repo.TaigaLinkView | None,
    tell: Tell,
) -> None:
    """Revise the current version of `plan` (proposed) as `instruction` (plain text) asks."""
    if len(instruction) > INSTRUCTION_MAX:
        await tell(instruction_too_long(len(instruction)))
        return
    decision = Decision(plan.id, plan.proposal_version, plan.slack_team_id, user_id, link, tell)
    approver = await may_approve(services, plan, decision)
    if approver is None:
        return
    assert plan.proposal is not None  # a proposed plan has its proposal
    current = Proposal.model_validate(plan.proposal)
    status = live_progress(
        services, channel=plan.slack_channel_id, thread_ts=plan.slack_thread_ts,
        title=f"Revising version {plan.proposal_version} of the plan: “{instruction}”",
        recipient=Recipient(team_id=plan.slack_team_id, user_id=user_id),
    )
    await status.step(Step("read", "Reading the project in Taiga"))
    minutes = await services.db.run(lambda s: repo.drafted_from(s, plan.id))
    logger.info("plan %s: refining version %d for %s", plan.id, plan.proposal_version, user_id)
    try:
        revised = await refine(
            anthropic=services.anthropic, model=services.settings.anthropic_model,
            taiga=approver.session, project=approver.project, current=current, minutes=minutes,
            instruction=instruction,
            budgets=Budgets.from_settings(services.settings), clock=services.clock,
            progress=status.step,
        )
    except Exception as error:
        await _refining_failed(services, plan, status, error, user_id=user_id, tell=tell)
        return
    await _show_outcome(
        services, plan, status, current, revised, user_id=user_id, instruction=instruction,
        tell=tell,
    )


async def _show_outcome(
    services: Services,
    plan: Plan,
    status: LiveProgress,
    current: Proposal,
    revised: Proposal,
    *,
    user_id: str,
    instruction: str,
    tell: Tell,
) -> None:
    """The status's last line: the new version is below, nothing changed, or why not."""
    unchanged = f"Version {plan.proposal_version} is unchanged."
    if revised.stopped is not None:
        why = revised.warnings[-1] if revised.warnings else "the revision was cut short."
        line = f"I could not finish the revised plan: {why} {unchanged}"
        await _end_status(status, line)
        return
    if same_plan(current, revised):
        said = revised.summary if revised.summary != revised.count_summary() else ""
        line = f"No change: the revised plan is the same as this one. {said}".strip()
        await _end_status(status, f"{line} {unchanged}")
        return
    version = await publish_version(
        services, plan, revised, kind="refined", author_id=user_id, note=instruction
    )
    if version is None:
        await _end_status(status, SOMEONE_ELSE_CHANGED_IT)
        await tell(SOMEONE_ELSE_CHANGED_IT)
        return
    await _end_status(status, f"Version {version} is below.")


async def _end_status(status: LiveProgress, line: str) -> None:
    await status.finish(blocks.status_blocks([line], status.title))


async def _refining_failed(
    services: Services,
    plan: Plan,
    status: LiveProgress,
    error: Exception,
    *,
    user_id: str,
    tell: Tell,
) -> None:
    """The status message says why in a plain sentence; an expired link gets its DM."""
    log_failure("refining the plan failed", error, plan_id=plan.id)
    sentence = explain(error, project=plan.project_slug, permission="view_project")
    said = f"I could not revise the plan: {sentence} Version {plan.proposal_version} is unchanged."
    await status.fail(sentence, blocks.error_blocks(said))
    if is_link_expired(error):
        await tell_link_expired(services, user_id=user_id, text=sentence)
    else:
        await tell(esc(said))
