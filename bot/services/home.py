"""App Home: gather what the Home tab shows for one user and publish it (`views.publish`).

It is published when the user opens the tab and refreshed after they link or unlink Taiga and
after one of their plans ends. A refresh never fails its caller: it is logged and dropped.
"""

from __future__ import annotations

import logging

from agent.executor.result import ExecutionResult
from agent.proposal import Proposal
from agent.wording import counted
from bot.blocks.home import (
    RECENT_PLANS,
    HomeAccount,
    HomePage,
    HomePlan,
    HomeProject,
    home_view,
)
from bot.middleware import find_link
from bot.services.core import Services
from storage import repositories as repo
from storage.models import Plan

logger = logging.getLogger(__name__)


async def publish_home(services: Services, *, team_id: str, user_id: str) -> None:
    page = await home_page(services, team_id=team_id, user_id=user_id)
    view = home_view(page, web_url=services.settings.taiga_web_url)
    await services.slack.views_publish(user_id=user_id, view=view)


def refresh_home_later(services: Services, *, team_id: str, user_id: str | None) -> None:
    """Publish the user's Home tab again in the background (a failure is only logged)."""
    if user_id:
        services.spawn_unbounded(
            publish_home(services, team_id=team_id, user_id=user_id), name="home"
        )


def refresh_plan_homes(services: Services, plan: Plan, *also: str | None) -> None:
    """A plan ended: refresh the Home tab of its requester and of `also` (its approver)."""
    for user_id in {plan.requester_slack_id, *also} - {None}:
        refresh_home_later(services, team_id=plan.slack_team_id, user_id=user_id)


async def home_page(services: Services, *, team_id: str, user_id: str) -> HomePage:
    plans = await services.db.run(
        lambda s: repo.recent_plans(s, team_id=team_id, user_id=user_id, limit=RECENT_PLANS)
    )
    channels = sorted({plan.slack_channel_id for plan in plans})
    projects = await services.db.run(
        lambda s: repo.projects_of_channels(
            s, team_id=team_id, user_id=user_id, channel_ids=channels
        )
    )
    return HomePage(
        account=await _account(services, team_id, user_id),
        projects=[HomeProject(p.slack_channel_id, p.project_name, p.project_slug)
                  for p in projects],
        plans=[_home_plan(plan) for plan in plans],
    )


async def _account(services: Services, team_id: str, user_id: str) -> HomeAccount | None:
    link = await find_link(services, team_id, user_id)
    if link is None:
        return None
    return HomeAccount(link.taiga_username, full_name=link.taiga_full_name)


def _home_plan(plan: Plan) -> HomePlan:
    result = ExecutionResult.model_validate(plan.result) if plan.result else None
    return HomePlan(
        plan_id=plan.id,
        sprint=plan.target_sprint,
        project_slug=plan.project_slug,
        channel_id=plan.slack_channel_id,
        state=plan.state,
        created_at=plan.created_at,
        counts=_counts(plan, result),
        thread_url=plan.slack_permalink,
        sprint_url=result.milestone_url if result else None,
    )


def _counts(plan: Plan, result: ExecutionResult | None) -> str:
    if result is not None:
        stories, tasks = len(result.created_of("story")), len(result.created_of("task"))
        made = f"{counted(stories, 'story', 'stories')} and {counted(tasks, 'task', 'tasks')}"
        return f"{made} created"
    if plan.proposal is None:
        return "no proposal yet"
    proposal = Proposal.model_validate(plan.proposal)
    stories, tasks = len(proposal.stories), proposal.task_count
    return f"{counted(stories, 'story', 'stories')}, {counted(tasks, 'task', 'tasks')} proposed"

