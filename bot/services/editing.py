"""Edit: whoever may approve a proposal opens it in a modal, and a valid submit posts the
edited proposal as the plan's next version.

The submit is checked within Slack's 3 seconds without calling Taiga (the sprints offered are
in the modal): field errors and a version someone else replaced meanwhile are shown in the
modal; the new version is then stored (compare-and-set) and posted after the acknowledgement,
and a person who lost a race there is told privately.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.proposal import Proposal
from bot.blocks.edit import (
    SPRINT_BLOCK,
    VIEW_BLOCKS_MAX,
    EditMetadata,
    SprintChoice,
    edit_form,
    edit_view,
)
from bot.services.core import Services
from bot.services.decisions import (
    PLAN_GONE,
    Decision,
    is_past_expiry,
    may_approve,
    open_proposal,
)
from bot.services.edited import edited_proposal, sprint_names
from bot.services.errors import log_failure
from bot.services.slack_io import Tell, tell_by_ephemeral
from bot.services.versions import SOMEONE_ELSE_CHANGED_IT, publish_version
from storage import repositories as repo
from storage.models import Plan
from taiga.models import Project
from taiga.names import normalise_name

logger = logging.getLogger(__name__)

Json = dict[str, Any]

TOO_LONG_TO_EDIT = (
    "This plan is too long to edit in a Slack form. Reject it and ask for a smaller plan, or "
    "approve it as it is."
)
NOT_OPENED = "I could not open the editor in time; please click Edit again."
NOTHING_CHANGED = "You changed nothing; change something, or Cancel to keep the plan as it is."


async def open_editor(services: Services, decision: Decision, *, trigger_id: str) -> None:
    """The Edit modal for someone who may approve the plan (else they are told why not)."""
    plan = await open_proposal(services, decision)
    if plan is None or plan.proposal is None:
        return
    approver = await may_approve(services, plan, decision)
    if approver is None:
        return
    proposal = Proposal.model_validate(plan.proposal)
    sprints = _sprint_choices(proposal, approver.project)
    metadata = EditMetadata(plan.id, plan.proposal_version, sprints)
    offered = EditMetadata.load(metadata.dump()).sprints
    view = edit_view(proposal, edit_form(proposal), metadata,
                     sprint_names=sprint_names(proposal, offered))
    if len(view["blocks"]) > VIEW_BLOCKS_MAX:
        await decision.tell(TOO_LONG_TO_EDIT)
        return
    try:
        await services.slack.views_open(trigger_id=trigger_id, view=view)
    except Exception as error:
        log_failure("could not open the edit form", error, plan_id=plan.id)
        await decision.tell(NOT_OPENED)


def _sprint_choices(proposal: Proposal, project: Project) -> tuple[SprintChoice, ...]:
    """The project's open sprints other than the plan's own."""
    own = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    return tuple(
        SprintChoice(m.id, m.name, m.slug)
        for m in project.milestones
        if not m.closed and normalise_name(m.name) != normalise_name(own)
    )


async def submit_edit(services: Services, *, team_id: str, user_id: str, view: Json) -> Json:
    """The acknowledgement of an Edit submit: the errors to show in the modal, or an empty
    answer that closes it while the new version is stored and posted."""
    metadata = EditMetadata.parse(str(view.get("private_metadata") or ""))
    if metadata is None:
        return _errors({SPRINT_BLOCK: PLAN_GONE})
    plan = await services.db.run(lambda s: repo.get_plan(s, metadata.plan_id))
    problem = _cannot_edit(services, plan, team_id, metadata)
    if problem is not None:
        return _errors({SPRINT_BLOCK: problem})
    assert plan is not None and plan.proposal is not None
    proposal = Proposal.model_validate(plan.proposal)
    edited = edited_proposal(proposal, edit_form(proposal), view, metadata.sprints)
    if isinstance(edited, dict):
        return _errors(edited)
    if edited == proposal:
        return _errors({SPRINT_BLOCK: NOTHING_CHANGED})
    tell = tell_by_ephemeral(
        services.slack, channel=plan.slack_channel_id, user=user_id,
        thread_ts=plan.slack_thread_ts,
    )
    services.spawn(
        _publish(services, plan, edited, user_id, tell), name=f"edit-{plan.id}", tell=tell
    )
    return {}


def _cannot_edit(
    services: Services, plan: Plan | None, team_id: str, metadata: EditMetadata
) -> str | None:
    """Why the modal's version can no longer be edited, or None."""
    if plan is None or plan.slack_team_id != team_id or plan.proposal is None:
        return PLAN_GONE
    if is_past_expiry(services, plan):
        return "This proposal expired. Ask for a new plan to start again."
    if plan.state != "proposed" or plan.proposal_version != metadata.version:
        return SOMEONE_ELSE_CHANGED_IT
    return None


async def _publish(
    services: Services, plan: Plan, proposal: Proposal, user_id: str, tell: Tell
) -> None:
    version = await publish_version(services, plan, proposal, kind="edited", author_id=user_id)
    if version is None:
        await tell(SOMEONE_ELSE_CHANGED_IT)


def _errors(by_block: dict[str, str]) -> Json:
    return {"response_action": "errors", "errors": by_block}
