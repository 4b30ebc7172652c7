"""The "View full plan" modal: open it on a click (anyone who sees the plan may read it), and
turn its pages. Each page is rendered from the plan as stored, so it shows the latest picks."""

from __future__ import annotations

from agent.proposal import Proposal
from bot.blocks.actions import parse_plan_ref
from bot.blocks.full_plan import full_plan_view
from bot.services.core import Services
from bot.services.decisions import PLAN_GONE, Decision, clicked_plan
from storage import repositories as repo
from storage.models import Plan


async def open_full_plan(services: Services, decision: Decision, trigger_id: str) -> None:
    """Open the modal on its first page, with the trigger of the click (valid for 3 s)."""
    plan = await clicked_plan(services, decision)
    if plan is None or plan.proposal is None:
        if plan is not None:
            await decision.tell(PLAN_GONE)
        return
    view = full_plan_view(
        plan.id, plan.proposal_version, Proposal.model_validate(plan.proposal), page=0
    )
    await services.slack.views_open(trigger_id=trigger_id, view=view)


async def turn_page(
    services: Services, *, team_id: str, view_id: str, shown: str, page: int
) -> None:
    """Show `page` in the open modal `view_id`, whose private metadata `shown` names the plan."""
    plan_id, _ = parse_plan_ref(shown)
    plan = await _plan(services, plan_id, team_id)
    if plan is None or plan.proposal is None:
        return
    view = full_plan_view(
        plan.id, plan.proposal_version, Proposal.model_validate(plan.proposal), page=page
    )
    await services.slack.views_update(view_id=view_id, view=view)


async def _plan(services: Services, plan_id: str, team_id: str) -> Plan | None:
    plan = await services.db.run(lambda s: repo.get_plan(s, plan_id))
    return plan if plan is not None and plan.slack_team_id == team_id else None
