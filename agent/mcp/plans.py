"""The plans the MCP server keeps: a proposal stored as version 1 of a `proposed` plan, and the
plans an MCP caller may see again by id (those made outside Slack: a Slack plan is decided in
its thread, with its buttons)."""

from __future__ import annotations

import hashlib

from sqlmodel import Session

from agent.plan_rows import PlanSnapshot, load_plan
from agent.proposal import Proposal
from storage import repositories as repo
from storage.db import Database


class UnknownPlan(LookupError):
    def __init__(self, plan_id: str) -> None:
        super().__init__(
            f"There is no plan {plan_id} here (plans made in Slack are decided in their thread)."
        )


async def record_proposed_plan(db: Database, proposal: Proposal, *, minutes: str) -> str:
    """Store the proposal as version 1 of a new `proposed` plan; returns its id."""

    def store(session: Session) -> str:
        plan = repo.create_plan(
            session,
            slack_team_id="",
            slack_channel_id="",
            slack_thread_ts="",
            project_id=proposal.project.id,
            project_slug=proposal.project.slug,
            target_sprint=proposal.target_sprint,
            minutes_digest=hashlib.sha256(minutes.encode("utf-8")).hexdigest(),
        )
        repo.store_first_version(
            session,
            plan_id=plan.id,
            proposal=proposal.model_dump(mode="json"),
            author_slack_id=None,
            minutes=minutes,
        )
        return plan.id

    return await db.run(store)


async def load_mcp_plan(db: Database, plan_id: str) -> PlanSnapshot:
    """The plan, if it was made outside Slack; raises `UnknownPlan` otherwise."""
    plan = await load_plan(db, plan_id)
    if plan is None or plan.slack_team_id:
        raise UnknownPlan(plan_id)
    return plan
