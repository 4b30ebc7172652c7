"""What one user can ask of Taiga: each API endpoint we use, as a typed method.

`SessionEndpoints` only maps arguments to paths and payloads and bodies to models; how a call
travels (token refresh, paging, retries, deadlines) is `taiga.client.TaigaSession`'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date
from typing import Any

from taiga.models import Milestone, Project, TaigaUser, Task, UserStory
from taiga.names import milestone_named
from taiga.responses import parse_as


class SessionEndpoints(ABC):
    """Taiga's reads and writes for one signed-in user; the subclass supplies the transport."""

    @abstractmethod
    async def _get(
        self, path: str, params: dict[str, Any] | None = None, *, not_found: str | None = None
    ) -> Any:
        """The JSON body of one GET, or our error (`not_found` words a 404)."""

    @abstractmethod
    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        """The JSON body of one POST, or our error."""

    @abstractmethod
    async def _patch(self, path: str, payload: dict[str, Any]) -> Any:
        """The JSON body of one PATCH, or our error."""

    @abstractmethod
    async def _delete(self, path: str) -> None:
        """One DELETE answered 204, or our error."""

    @abstractmethod
    async def _get_all(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every item of a paginated list."""

    # -- reads

    async def me(self) -> TaigaUser:
        return parse_as(TaigaUser, await self._get("/users/me"))

    async def get_project(self, project_id: int) -> Project:
        body = await self._get(
            f"/projects/{int(project_id)}", not_found=f"Project {project_id} was not found"
        )
        return parse_as(Project, body)

    async def get_project_by_slug(self, slug: str) -> Project:
        body = await self._get(
            "/projects/by_slug",
            {"slug": slug},
            not_found=f"Project '{slug}' was not found, or you are not a member of it",
        )
        return parse_as(Project, body)

    async def list_member_projects(self, user_id: int) -> list[Project]:
        """The projects `user_id` is a member of, each with the acting user's permissions."""
        items = await self._get_all("/projects", {"member": int(user_id)})
        return [parse_as(Project, item) for item in items]

    async def list_milestones(self, project_id: int) -> list[Milestone]:
        """All sprints of the project, newest first (Taiga orders by -estimated_start)."""
        items = await self._get_all("/milestones", {"project": int(project_id)})
        return [parse_as(Milestone, item) for item in items]

    async def get_milestone(self, milestone_id: int) -> Milestone:
        body = await self._get(
            f"/milestones/{int(milestone_id)}", not_found=f"Sprint {milestone_id} was not found"
        )
        return parse_as(Milestone, body)

    async def get_milestone_by_name(self, project_id: int, name: str) -> Milestone | None:
        """The sprint whose name matches ignoring case and whitespace ("sprint6" = "Sprint 6")."""
        return milestone_named(await self.list_milestones(project_id), name)

    async def list_user_stories(
        self, project_id: int, *, milestone_id: int | None = None, backlog: bool = False
    ) -> list[UserStory]:
        if backlog and milestone_id is not None:
            raise ValueError("pass either milestone_id or backlog=True, not both")
        params: dict[str, Any] = {"project": int(project_id)}
        if milestone_id is not None:
            params["milestone"] = int(milestone_id)
        if backlog:
            params["milestone__isnull"] = "true"
        return [parse_as(UserStory, item) for item in await self._get_all("/userstories", params)]

    async def get_user_story(self, story_id: int) -> UserStory:
        body = await self._get(
            f"/userstories/{int(story_id)}", not_found=f"User story {story_id} was not found"
        )
        return parse_as(UserStory, body)

    async def list_tasks(
        self,
        *,
        user_story_id: int | None = None,
        project_id: int | None = None,
        milestone_id: int | None = None,
    ) -> list[Task]:
        params: dict[str, Any] = {}
        if user_story_id is not None:
            params["user_story"] = int(user_story_id)
        if project_id is not None:
            params["project"] = int(project_id)
        if milestone_id is not None:
            params["milestone"] = int(milestone_id)
        if not params:
            raise ValueError("list_tasks needs user_story_id, project_id or milestone_id")
        return [parse_as(Task, item) for item in await self._get_all("/tasks", params)]

    # -- writes (never retried on failure; ResponseLost when the answer went missing)

    async def create_milestone(
        self, project_id: int, name: str, start: date, finish: date
    ) -> Milestone:
        body = await self._post(
            "/milestones",
            {
                "project": int(project_id),
                "name": name,
                "estimated_start": start.isoformat(),
                "estimated_finish": finish.isoformat(),
            },
        )
        return parse_as(Milestone, body)

    async def create_user_story(
        self,
        project_id: int,
        subject: str,
        *,
        description: str = "",
        milestone_id: int | None = None,
        tags: list[str] | None = None,
        assigned_to: int | None = None,
        due_date: date | None = None,
        external_reference: Sequence[str] | None = None,
    ) -> UserStory:
        """`external_reference` (e.g. `["taiga-planner", "<plan>:<action>"]`) is stored as sent
        and returned by reads; Taiga cannot filter lists by it."""
        payload: dict[str, Any] = {"project": int(project_id), "subject": subject}
        if assigned_to is not None:  # a user who is not a project member is a 400
            payload["assigned_to"] = int(assigned_to)
        if due_date is not None:
            payload["due_date"] = due_date.isoformat()
        if description:
            payload["description"] = description
        if milestone_id is not None:
            payload["milestone"] = int(milestone_id)
        if tags:
            payload["tags"] = list(tags)
        if external_reference is not None:
            payload["external_reference"] = list(external_reference)
        return parse_as(UserStory, await self._post("/userstories", payload))

    async def move_user_story(
        self, story_id: int, milestone_id: int | None, *, version: int
    ) -> UserStory:
        """Put the story in a sprint (None: the backlog). Taiga checks `version` only against the
        fields this PATCH sends, so a caller that must not overwrite other edits compares the
        story's version itself first."""
        payload = {"milestone": milestone_id, "version": int(version)}
        return parse_as(UserStory, await self._patch(f"/userstories/{int(story_id)}", payload))

    async def create_task(
        self,
        project_id: int,
        subject: str,
        *,
        user_story_id: int | None = None,
        milestone_id: int | None = None,
        description: str = "",
        assigned_to: int | None = None,
        due_date: date | None = None,
        external_reference: Sequence[str] | None = None,
    ) -> Task:
        payload: dict[str, Any] = {"project": int(project_id), "subject": subject}
        if assigned_to is not None:
            payload["assigned_to"] = int(assigned_to)
        if due_date is not None:
            payload["due_date"] = due_date.isoformat()
        if user_story_id is not None:
            payload["user_story"] = int(user_story_id)
        if milestone_id is not None:
            payload["milestone"] = int(milestone_id)
        if description:
            payload["description"] = description
        if external_reference is not None:
            payload["external_reference"] = list(external_reference)
        return parse_as(Task, await self._post("/tasks", payload))

    # -- deletes (DELETE takes no `version`; a repeated DELETE of a gone object answers 403,
    #    not 404, so only a read tells that it is gone)

    async def get_task(self, task_id: int) -> Task:
        body = await self._get(f"/tasks/{int(task_id)}", not_found=f"Task {task_id} was not found")
        return parse_as(Task, body)

    async def delete_task(self, task_id: int) -> None:
        await self._delete(f"/tasks/{int(task_id)}")

    async def delete_user_story(self, story_id: int) -> None:
        await self._delete(f"/userstories/{int(story_id)}")

    async def delete_milestone(self, milestone_id: int) -> None:
        await self._delete(f"/milestones/{int(milestone_id)}")
