"""What each MCP tool does, always with the caller's own Taiga session.

Propose, then apply: the same planning loop, budgets, permission gating, executor and write
ledger as Slack and the HTTP API (`agent.service`). `apply_plan` asks the person first where the
client can ask (`Confirm`); a plan that a budget stopped is applied only with `allow_partial`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from anthropic import AsyncAnthropic

from agent.executor import apply_plan
from agent.executor.lease import LeaseTiming
from agent.identity import RequestTokens
from agent.mcp.catalog import ApplyPlanInput, McpTool, PlanInput, ProposePlanInput
from agent.mcp.plans import load_mcp_plan, record_proposed_plan
from agent.mcp.resources import may_write_in, member_projects
from agent.mcp.views import not_confirmed, plan_view, proposal_view, result_view
from agent.plan_rows import PlanSnapshot
from agent.planning.context import PlanScope, read_project
from agent.planning.reads import TaigaReads
from agent.proposal import Proposal
from agent.service import (
    propose_plan,
    require_finished,
    require_permissions,
    undo_applied_plan,
)
from agent.settings import Settings
from agent.tools import ToolError
from agent.wording import counted
from storage import repositories as repo
from storage.db import Database
from storage.plan_states import Transition
from taiga.client import Clock
from taiga.models import Project

Confirm = Callable[[str], Awaitable[bool]]
"""Asks the person a yes/no question; True when they said yes (or cannot be asked)."""


@dataclass
class McpPlanner:
    db: Database
    settings: Settings
    anthropic: AsyncAnthropic
    clock: Clock

    async def may_write(self, tokens: RequestTokens) -> bool:
        """Whether the caller may add stories or tasks in any of their projects."""
        return any(may_write_in(project) for project in await member_projects(tokens))

    async def read(self, tool: McpTool, args: Any, tokens: RequestTokens) -> Any:
        """One of the Claude read tools, on the project the call names."""
        assert tool.read_tool is not None
        session = tokens.session()
        project = await read_project(session, args.project)
        if tool.read_tool.permission not in project.my_permissions:
            raise ToolError(
                f"Your role in {project.name} does not allow this read "
                f"(the {tool.read_tool.permission} permission)."
            )
        answer, failed = await TaigaReads(taiga=session, scope=_read_only(project)).read(
            tool.name, args
        )
        if failed:
            raise ToolError(str(answer))
        return answer

    async def propose(self, args: ProposePlanInput, tokens: RequestTokens) -> dict[str, Any]:
        limit = self.settings.max_minutes_chars
        if len(args.minutes) > limit:
            raise ToolError(
                f"The minutes are {len(args.minutes)} characters; the limit is {limit}."
            )
        deadline = self.clock.now() + self.settings.agent_deadline_seconds
        session = tokens.session(deadline=deadline)
        project = await read_project(session, args.project)
        proposal = await propose_plan(
            session,
            project,
            sprint_name=args.sprint,
            minutes=args.minutes,
            settings=self.settings,
            anthropic=self.anthropic,
            clock=self.clock,
        )
        plan_id = await record_proposed_plan(self.db, proposal, minutes=args.minutes)
        return proposal_view(plan_id, proposal)

    async def show(self, args: PlanInput, tokens: RequestTokens) -> dict[str, Any]:
        plan = await load_mcp_plan(self.db, args.plan_id)
        await read_project(tokens.session(), plan.project_id)  # only for who may see the project
        return plan_view(plan)

    async def apply(
        self, args: ApplyPlanInput, tokens: RequestTokens, confirm: Confirm
    ) -> dict[str, Any]:
        plan = await load_mcp_plan(self.db, args.plan_id)
        session = tokens.session()
        project = await read_project(session, plan.project_id)
        if plan.state != "done":
            proposal = Proposal.model_validate(plan.proposal or {})
            if plan.state == "proposed":  # a partial plan is finished as it was approved
                require_finished(proposal, allow_partial=args.allow_partial)
            require_permissions(proposal, project.my_permissions)
            if not await confirm(_question(plan, proposal, project)):
                return not_confirmed(plan)
        me = await session.me()
        if plan.state == "proposed":
            await self._approve(plan.id, decided_by=f"mcp:{me.username}"[:64])
        result = await apply_plan(
            db=self.db,
            plan_id=plan.id,
            taiga=session,
            web_url=self.settings.taiga_web_url,
            concurrency=self.settings.taiga_write_concurrency,
            lease=LeaseTiming.from_settings(self.settings),
            actor_id=me.id,
        )
        return result_view(result)

    async def undo(self, args: PlanInput, tokens: RequestTokens) -> dict[str, Any]:
        plan = await load_mcp_plan(self.db, args.plan_id)
        session = tokens.session()
        me = await session.me()
        report = await undo_applied_plan(
            self.db, plan.id, taiga=session, settings=self.settings, actor_id=me.id
        )
        return report.model_dump(mode="json")

    async def _approve(self, plan_id: str, *, decided_by: str) -> None:
        """proposed → approved; a lost race (another apply approved it first) is no error: the
        executor applies the plan once either way."""
        await self.db.run(
            lambda s: repo.transition_plan(
                s, plan_id=plan_id, transition=Transition.APPROVE, decided_by=decided_by
            )
        )


def _question(plan: PlanSnapshot, proposal: Proposal, project: Project) -> str:
    kinds = [action.kind for action in proposal.actions()]
    stories = counted(kinds.count("story"), "user story", "user stories")
    tasks = counted(kinds.count("task"), "task", "tasks")
    again = " (only what is still missing)" if plan.state == "partial" else ""
    return (
        f"Write this plan to Taiga project {project.name}, sprint {proposal.target_sprint}: "
        f"{stories} and {tasks}{again}?"
    )


def _read_only(project: Project) -> PlanScope:
    """The scope a read needs: the project alone (there is no planning run around it)."""
    return PlanScope(
        project=project,
        milestones=[],
        sprint_name="",
        sprint_stories=[],
        milestone=None,
        known_stories={},
        today=date.today(),
    )

