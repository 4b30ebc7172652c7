"""The caller's Taiga projects and each project's sprints, as MCP resources (read with the
caller's own token, so they show exactly what Taiga shows that person)."""

from __future__ import annotations

import re
from typing import Any

from mcp import types
from pydantic import AnyUrl

from agent.identity import RequestTokens
from agent.planning.context import milestone_view, read_project
from agent.tools import STORY_AND_TASK_PERMISSIONS
from taiga.models import Project

PROJECTS_URI = "taiga://projects"
SPRINTS_TEMPLATE = "taiga://projects/{project}/sprints"
_SPRINTS_URI = re.compile(r"taiga://projects/(?P<project>[^/]+)/sprints")
_JSON = "application/json"


class UnknownResource(LookupError):
    pass


def resource_templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            uriTemplate=SPRINTS_TEMPLATE,
            name="sprints",
            description="A project's sprints (by slug or id): dates, whether closed, stories.",
            mimeType=_JSON,
        )
    ]


async def list_resources(tokens: RequestTokens) -> list[types.Resource]:
    projects = await member_projects(tokens)
    listing = types.Resource(
        uri=AnyUrl(PROJECTS_URI),
        name="projects",
        description="Your Taiga projects, and whether you may plan in each.",
        mimeType=_JSON,
    )
    sprints = [
        types.Resource(
            uri=AnyUrl(SPRINTS_TEMPLATE.format(project=p.slug)),
            name=f"{p.name}: sprints",
            mimeType=_JSON,
        )
        for p in projects
    ]
    return [listing, *sprints]


async def read_resource(uri: str, tokens: RequestTokens) -> Any:
    if uri == PROJECTS_URI:
        return [_project_view(p) for p in await member_projects(tokens)]
    matched = _SPRINTS_URI.fullmatch(uri)
    if matched is None:
        raise UnknownResource(f"There is no resource {uri}.")
    session = tokens.session()
    project = await read_project(session, matched["project"])
    return [milestone_view(m) for m in await session.list_milestones(project.id)]


async def member_projects(tokens: RequestTokens) -> list[Project]:
    """The caller's projects, each with their permissions in it."""
    session = tokens.session()
    me = await session.me()
    return await session.list_member_projects(me.id)


def may_write_in(project: Project) -> bool:
    """Whether the caller may add stories or tasks in the project (what applying a plan needs)."""
    return bool(project.my_permissions & set(STORY_AND_TASK_PERMISSIONS))


def _project_view(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "slug": project.slug,
        "name": project.name,
        "may_plan": may_write_in(project),
    }
