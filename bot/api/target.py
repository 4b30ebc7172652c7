"""What `POST /agent/run` asks to plan: the target sprint (`milestone_id`, else the sprint the
prompt names) and, with `user_story_id`, the existing story of that sprint it concerns."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.api.errors import ApiError
from bot.api.models import AgentRunRequest
from taiga.client import TaigaSession
from taiga.errors import NotFound
from taiga.models import Project
from taiga.names import milestone_named, normalise_name

_SPRINT_NUMBER = re.compile(r"\bsprint[\s#:-]*(\d+)\b", re.IGNORECASE)


async def target_sprint(session: TaigaSession, project: Project, body: AgentRunRequest) -> str:
    """milestone_id's name, else the sprint the prompt names, else a 422."""
    if body.milestone_id is not None:
        try:
            milestone = await session.get_milestone(body.milestone_id)
        except NotFound:
            raise ApiError(
                422, f"milestone_id {body.milestone_id} was not found in Taiga."
            ) from None
        if milestone.project != project.id:
            raise ApiError(
                422, f"milestone_id {body.milestone_id} is not a sprint of project {project.id}."
            )
        return str(milestone.name)
    name = sprint_from_prompt(body.prompt, [m.name for m in project.milestones])
    if name is None:
        raise ApiError(
            422,
            "Say which sprint to plan: send milestone_id, or name the sprint in the prompt "
            "(for example 'Create user stories and tasks for Sprint 6').",
        )
    return name


def sprint_from_prompt(prompt: str, milestone_names: Sequence[str]) -> str | None:
    """The sprint the prompt asks for: the last mention of an existing sprint's name or of
    'sprint N' (instructions usually follow the minutes). 'sprint 6' becomes the existing
    sprint's spelling if there is one, else 'Sprint 6'."""
    mentions: list[tuple[int, int, str]] = []  # (position, priority, name)
    for name in milestone_names:
        pattern = r"(?<!\w)" + r"\s*".join(re.escape(w) for w in name.split()) + r"(?!\w)"
        for match in re.finditer(pattern, prompt, re.IGNORECASE):
            mentions.append((match.start(), 1, name))
    by_norm = {normalise_name(n): n for n in milestone_names}
    for match in _SPRINT_NUMBER.finditer(prompt):
        named = f"Sprint {int(match.group(1))}"
        mentions.append((match.start(), 0, by_norm.get(normalise_name(named), named)))
    if not mentions:
        return None
    return max(mentions)[2]


async def minutes_with_story_hint(
    session: TaigaSession, project: Project, body: AgentRunRequest, sprint_name: str
) -> str:
    """The prompt, plus which existing story it concerns (one of the target sprint's)."""
    if body.user_story_id is None:
        return body.prompt
    try:
        story = await session.get_user_story(body.user_story_id)
    except NotFound:
        raise ApiError(422, f"user_story_id {body.user_story_id} was not found in Taiga.") from None
    if story.project != project.id:
        raise ApiError(422, f"user_story_id {body.user_story_id} is not in project {project.id}.")
    sprint = milestone_named(project.milestones, sprint_name)
    if sprint is None or story.milestone != sprint.id:
        raise ApiError(
            422,
            f"user_story_id {body.user_story_id} is not in {sprint_name}; a plan adds tasks only "
            "to stories of the sprint it plans.",
        )
    return (
        f"{body.prompt}\n\n(The request concerns the existing user story #{story.ref} "
        f'"{story.subject}" (id {story.id}); add tasks to it where they belong.)'
    )
