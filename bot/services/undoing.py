"""Undo on an applied plan's message: only the approver, within `PLAN_UNDO_MINUTES`, exactly
once (the plan's compare-and-set and the write ledger in `agent.undo`), and the report in the
plan's message. The recovery sweep finishes an undo a restart cut short with `undo_and_show`."""

from __future__ import annotations

import logging

from agent.identity import LinkExpired
from agent.service import undo_applied_plan
from agent.undo import UndoRefused, UndoReport
from bot.blocks.undo import undo_blocks, undo_retry_blocks
from bot.services.accounts import tell_link_expired
from bot.services.core import Services
from bot.services.decisions import Decision, clicked_plan
from bot.services.errors import NOT_LINKED, explain, is_link_expired, log_failure
from bot.services.slack_io import Tell, esc, update
from storage.models import Plan
from taiga.client import TaigaSession
from taiga.errors import TaigaError

logger = logging.getLogger(__name__)

UNDOING_NOW = "This plan is being undone right now."


async def undo(services: Services, decision: Decision) -> None:
    """A click on Undo (or Retry undo): the approver's own Taiga session deletes what the plan
    created; anyone else is told who may."""
    plan = await clicked_plan(services, decision)
    if plan is None:
        return
    if decision.user_id != plan.decided_by:
        who = f"<@{plan.decided_by}>, who approved it," if plan.decided_by else "its approver"
        await decision.tell(f"Only {who} can undo this plan.")
        return
    if decision.link is None:
        await decision.tell(NOT_LINKED)
        return
    logger.info("plan %s: undo by %s", plan.id, decision.user_id)
    session = services.refresher.session(decision.link)
    await undo_and_show(
        services, plan, session,
        undone_by=decision.user_id, actor_taiga_id=decision.link.taiga_user_id,
        tell=decision.tell,
    )  # fmt: skip


async def undo_and_show(
    services: Services,
    plan: Plan,
    session: TaigaSession,
    *,
    undone_by: str,
    actor_taiga_id: int,
    tell: Tell | None,
) -> UndoReport | None:
    """Undo the plan and show the report in its message; a refusal or failure is told to
    `tell` (when there is someone to tell). Returns the report (state `undoing`: another undo
    holds the plan and nothing was shown), or None when nothing could start."""
    try:
        report = await undo_applied_plan(
            services.db, plan.id, taiga=session, settings=services.settings,
            now=services.now, actor_id=actor_taiga_id,
        )  # fmt: skip
    except UndoRefused as refused:
        if tell is not None:
            await tell(esc(str(refused)))
        return None
    except (TaigaError, LinkExpired) as error:
        log_failure("undoing the plan failed", error, plan_id=plan.id)
        if tell is not None:
            await tell(esc(explain(error, project=plan.project_slug)))
        if is_link_expired(error):
            await tell_link_expired(services, user_id=undone_by, text=explain(error))
        return None
    if report.state == "undoing":
        if tell is not None:
            await tell(UNDOING_NOW)
        return report
    if plan.slack_message_ts:
        message = undo_blocks(report, undone_by=undone_by)
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )  # fmt: skip
    logger.info(
        "plan %s: %s (%d removed, %d moved back, %d kept, %d not undone)",
        plan.id, report.state, len(report.removed), len(report.moved_back), len(report.kept),
        len(report.failed),
    )  # fmt: skip
    return report


async def show_undo_retry(services: Services, plan: Plan, sentence: str) -> None:
    """The plan's message becomes `sentence` with a Retry undo button."""
    if plan.slack_message_ts:
        message = undo_retry_blocks(sentence, plan.id)
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )  # fmt: skip
