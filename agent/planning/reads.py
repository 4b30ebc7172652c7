"""The read tools: real Taiga reads with the acting user's own token, bounded by the deadline.

A read answers the model with a view (`agent.planning.context`) or, when Taiga refuses, with a
sentence marked as an error. Stories a read lists become known to the run, so the recorder can
add tasks to them without reading them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agent import tools as t
from agent.budgets import BudgetExceeded, BudgetTracker, StopReason
from agent.planning.context import (
    PlanScope,
    milestone_view,
    story_view,
)
from taiga.errors import TaigaError

if TYPE_CHECKING:
    from taiga.client import TaigaSession

T = TypeVar("T")

MAX_LISTED_STORIES = 300


async def within_deadline(tracker: BudgetTracker, awaitable: Awaitable[T]) -> T:
    """Await a Taiga read, but not past the run's deadline (the session may have none)."""
    try:
        async with asyncio.timeout(max(tracker.remaining(), 0.0)):
            return await awaitable
    except TimeoutError:
        raise BudgetExceeded(StopReason.DEADLINE) from None


class TaigaReads:
    """The read tools of one run, each named after its tool (`taiga_list_user_stories`, …)."""

    def __init__(self, *, taiga: TaigaSession, scope: PlanScope) -> None:
        self.taiga = taiga
        self.scope = scope

    async def read(self, name: str, args: BaseModel) -> tuple[Any, bool]:
        """The tool's answer for the model, and whether it is an error."""
        try:
            return await getattr(self, name)(args), False
        except t.ToolError as exc:
            return str(exc), True
        except TaigaError as exc:
            return f"Taiga refused the read: {exc.message or type(exc).__name__}", True

    async def taiga_get_milestone_by_name(self, args: BaseModel) -> Any:
        assert isinstance(args, t.MilestoneByNameInput)
        found = await self.taiga.get_milestone_by_name(self.scope.project.id, args.name)
        return None if found is None else milestone_view(found)

    async def taiga_list_user_stories(self, args: BaseModel) -> Any:
        assert isinstance(args, t.ListUserStoriesInput)
        stories = await self.taiga.list_user_stories(
            self.scope.project.id, milestone_id=args.milestone_id, backlog=args.backlog
        )
        for story in stories:
            self.scope.known_stories.setdefault(story.id, story)
        listed = [story_view(s) for s in stories[:MAX_LISTED_STORIES]]
        if len(stories) > MAX_LISTED_STORIES:
            return {"stories": listed, "note": f"first {MAX_LISTED_STORIES} of {len(stories)}"}
        return listed
