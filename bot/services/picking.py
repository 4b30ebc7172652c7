"""Picking: a click on a proposal's checkboxes leaves stories and tasks out of what Approve
writes, or puts them back. The pick is stored with the plan (so it holds for everyone, and
Approve writes exactly what is left ticked) and the message is shown again with it.

Slack sends the ticked options of one checkbox group; what the person changed is the
difference from what that group showed them. Storing it is a compare-and-set on the plan,
retried on a lost race, so two people ticking different items at once both keep theirs. Only
someone who may approve the plan may pick (the same check as Approve).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.locks import KeyedLocks
from agent.proposal import Proposal
from bot.blocks.picking import item_numbers
from bot.services.core import Services
from bot.services.decisions import Decision, may_decide, open_proposal
from bot.services.slack_io import update
from bot.services.versions import proposal_message
from storage import repositories as repo
from storage.models import Plan
from storage.plan_states import Transition

logger = logging.getLogger(__name__)

_ATTEMPTS = 5
TOO_BUSY = "Many people are changing this plan right now; your change was not saved. Try again."

# One re-render of a plan's message at a time in this process, so the last one shows the
# latest picks (two renders racing could otherwise leave the older one on screen).
_render_locks: KeyedLocks[str] = KeyedLocks()


@dataclass(frozen=True, slots=True)
class Pick:
    """A click on a checkbox group: the item numbers ("3", "3.2", "E1") it unticked and ticked,
    compared with what the group showed the person."""

    decision: Decision
    unticked: frozenset[str]
    ticked: frozenset[str]


async def pick(services: Services, choice: Pick) -> None:
    """Store the pick on the current version of an undecided plan and show it to everyone; a
    replaced version, a decided plan or someone who may not approve is told why, privately."""
    decision = choice.decision
    plan = await open_proposal(services, decision)
    if plan is None or await may_decide(services, plan, decision) is None:
        return
    for _ in range(_ATTEMPTS):
        if await _store(services, plan, choice):
            await show_current_proposal(services, plan.id)
            return
        plan = await open_proposal(services, decision)
        if plan is None:
            return
    await decision.tell(TOO_BUSY)


async def _store(services: Services, plan: Plan, choice: Pick) -> bool:
    """Apply the pick to the plan as read; False when the plan changed since (read it again)."""
    assert plan.proposal is not None  # a proposed plan has its proposal
    proposal = Proposal.model_validate(plan.proposal)
    picked = picked_proposal(proposal, choice)
    if picked.left_out == proposal.left_out:
        return True
    stored = picked.model_dump(mode="json")
    moved = await services.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan.id, transition=Transition.PICK, expected_version=plan.version,
            proposal=stored,
        )
    )
    if moved:
        logger.info("plan %s: picked by %s", plan.id, choice.decision.user_id)
    return moved


def picked_proposal(proposal: Proposal, choice: Pick) -> Proposal:
    """`proposal` with the pick's unticked items left out and its ticked ones put back; ticking
    a task of a left-out story puts the story back too."""
    numbers = item_numbers(proposal)
    unticked = {numbers[n] for n in choice.unticked if n in numbers}
    ticked = {numbers[n] for n in choice.ticked if n in numbers}
    ticked |= {key.partition("/")[0] for key in ticked} & proposal.item_keys()
    return proposal.picking(unticked, picked=False).picking(ticked, picked=True)


async def show_current_proposal(services: Services, plan_id: str) -> None:
    """Show a still undecided plan's stored proposal (picks included) in its message."""
    async with _render_locks(plan_id):
        plan = await services.db.run(lambda s: repo.get_plan(s, plan_id))
        if plan is None or plan.state != "proposed" or plan.proposal is None:
            return
        if not plan.slack_message_ts:
            return
        message = proposal_message(
            services, plan.id, Proposal.model_validate(plan.proposal),
            plan.requester_slack_id or "", plan.proposal_version,
        )
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )
