"""Refining a proposal: the planning loop run again on the current version and an instruction.

The model gets the current version as structured data (`proposal_view`), the minutes it was
drafted from and the person's instruction, all as untrusted data, and re-proposes the whole
revised plan with the same tools, permission gate and budgets as planning (`agent.loop`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.budgets import Budgets
from agent.loop import propose
from agent.planning.context import proposal_view
from agent.progress import Progress
from agent.prompts import Revision
from agent.proposal import Proposal

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from taiga.client import Clock, TaigaSession
    from taiga.models import Project


async def refine(
    *,
    anthropic: AsyncAnthropic,
    model: str,
    taiga: TaigaSession,
    project: Project,
    current: Proposal,
    minutes: str | None,
    instruction: str,
    budgets: Budgets,
    clock: Clock,
    progress: Progress | None = None,
) -> Proposal:
    """The revised proposal (nothing is written); `taiga` is the refiner's own session and
    `project` as it showed it to them (already read to check they may refine, so it is not read
    again), so their permissions decide the tools. `minutes` is None when they were not kept."""
    sprint = current.milestone.name if current.milestone else current.target_sprint
    return await propose(
        anthropic=anthropic, model=model, taiga=taiga, project_ref=project,
        sprint_name=sprint, minutes=minutes, budgets=budgets, clock=clock, progress=progress,
        revision=Revision(current=proposal_view(current), instruction=instruction),
    )


def same_plan(before: Proposal, after: Proposal) -> bool:
    """Whether a revision proposes exactly what Approve of `before` would write."""
    return _without_numbers(before) == _without_numbers(after)


def _without_numbers(proposal: Proposal) -> dict[str, Any]:
    view = proposal_view(proposal)
    view["stories"] = [{k: v for k, v in s.items() if k != "number"} for s in view["stories"]]
    return view
