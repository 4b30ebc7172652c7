"""What the plan tools answer: JSON a client shows the person (and its model reads)."""

from __future__ import annotations

from typing import Any

from agent.executor import ExecutionResult
from agent.plan_rows import PlanSnapshot
from agent.proposal import Proposal

NEXT_STEP = (
    "Nothing has been written to Taiga. Show this plan to the person; if they agree, call "
    "apply_plan with this plan_id."
)


def proposal_view(plan_id: str, proposal: Proposal) -> dict[str, Any]:
    return {
        "plan_id": plan_id,
        "state": "proposed",
        "complete": proposal.stopped is None,
        **proposal.model_dump(mode="json", exclude={"usage"}),
        "next": NEXT_STEP,
    }


def plan_view(plan: PlanSnapshot) -> dict[str, Any]:
    view: dict[str, Any] = {"plan_id": plan.id, "state": plan.state}
    if plan.proposal is not None:
        view["proposal"] = {k: v for k, v in plan.proposal.items() if k != "usage"}
    if plan.result is not None:
        view["result"] = plan.result
    if plan.error:
        view["error"] = plan.error
    return view


def result_view(result: ExecutionResult) -> dict[str, Any]:
    return {**result.model_dump(mode="json"), "applied": True}


def not_confirmed(plan: PlanSnapshot) -> dict[str, Any]:
    return {
        "plan_id": plan.id,
        "state": plan.state,
        "applied": False,
        "message": "Nothing was written to Taiga: the person did not confirm.",
    }
