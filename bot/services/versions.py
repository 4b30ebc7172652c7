"""Publishing a new version of a proposal (an edit or a refinement) in the plan's thread.

The new version is stored by compare-and-set on the version the person saw, so two people
changing one version at once cannot both win; then it is posted as a new message in the thread,
and the old message says it was replaced (its buttons gone; a stale click still answers that it
was replaced and does nothing).
"""

from __future__ import annotations

import logging

from agent.proposal import Proposal
from bot import blocks
from bot.blocks.notices import replaced_blocks
from bot.services.core import Services
from bot.services.slack_io import post, update
from storage import repositories as repo
from storage.models import Plan
from storage.repositories.revisions import RevisionKind

logger = logging.getLogger(__name__)

SOMEONE_ELSE_CHANGED_IT = (
    "Someone else changed this plan while you were working on it (or it was decided), so your "
    "change was not saved. Open the newest version in the thread and try again."
)


async def publish_version(
    services: Services,
    plan: Plan,
    proposal: Proposal,
    *,
    kind: RevisionKind,
    author_id: str,
    note: str | None = None,
) -> int | None:
    """Store `proposal` as the version after `plan.proposal_version` (with its target sprint)
    and show it in the thread; the new version's number, or None when someone made another
    version first or the plan is no longer proposed (nothing changed)."""
    seen = plan.proposal_version
    stored = proposal.model_dump(mode="json")
    moved = await services.db.run(
        lambda s: repo.store_new_version(
            s, plan_id=plan.id, seen_version=seen, proposal=stored, kind=kind,
            author_slack_id=author_id, note=note, target_sprint=proposal.target_sprint,
        )
    )
    if not moved:
        return None
    version = seen + 1
    logger.info("plan %s: version %d %s by %s", plan.id, version, kind, author_id)
    message = proposal_message(
        services, plan.id, proposal, plan.requester_slack_id or author_id, version
    )
    ts = await post(
        services.slack, channel=plan.slack_channel_id, thread_ts=plan.slack_thread_ts,
        **message.as_kwargs(),
    )
    await services.db.run(lambda s: repo.update_plan(s, plan_id=plan.id, slack_message_ts=ts))
    if plan.slack_message_ts:
        old = replaced_blocks(seen, version, author_id, summary=plan_summary(plan))
        await update(
            services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **old.as_kwargs(),
        )
    return version


def proposal_message(
    services: Services, plan_id: str, proposal: Proposal, requester_id: str, version: int
) -> blocks.SlackMessage:
    """The message that shows version `version` of a plan's proposal with its controls."""
    return blocks.proposal_blocks(
        plan_id, proposal, requester_id, version=version,
        model=services.settings.anthropic_model, web_url=services.settings.taiga_web_url,
    )


def plan_summary(plan: Plan) -> str | None:
    """The one-line count of what the plan's proposal holds ("Proposed: 3 user stories…")."""
    if plan.proposal is None:
        return None
    return Proposal.model_validate(plan.proposal).count_summary()
