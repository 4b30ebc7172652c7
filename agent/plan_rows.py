"""A plan as the executor and undo read it, detached from the session that read it, and the one
way they move its state (a compare-and-set along `storage.plan_states.MOVES`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage import repositories as repo
from storage.db import Database
from storage.models import Plan
from storage.plan_states import Transition


@dataclass(frozen=True)
class PlanSnapshot:
    id: str
    state: str
    version: int
    updated_at: datetime
    project_id: int
    proposal: dict[str, Any] | None
    result: dict[str, Any] | None
    slack_permalink: str | None
    slack_team_id: str  # "" for a plan made outside Slack (HTTP API, CLI, MCP)
    error: str | None


def snapshot(plan: Plan | None) -> PlanSnapshot | None:
    if plan is None:
        return None
    return PlanSnapshot(
        id=plan.id,
        state=plan.state,
        version=plan.version,
        updated_at=plan.updated_at,
        project_id=plan.project_id,
        proposal=plan.proposal,
        result=plan.result,
        slack_permalink=plan.slack_permalink,
        slack_team_id=plan.slack_team_id,
        error=plan.error,
    )


async def load_plan(db: Database, plan_id: str) -> PlanSnapshot | None:
    return await db.run(lambda s: snapshot(repo.get_plan(s, plan_id)))


async def move_plan(db: Database, plan_id: str, transition: Transition, **changes: Any) -> bool:
    """Make `transition` on the plan; True iff it moved."""
    return await db.run(
        lambda s: repo.transition_plan(s, plan_id=plan_id, transition=transition, **changes)
    )
