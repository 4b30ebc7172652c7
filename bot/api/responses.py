"""The answer of `POST /agent/run`: what was proposed (nothing written) or what was created in
Taiga, with ids and links, grouped as the proposal's stories and their tasks."""

from __future__ import annotations

from agent.executor import ExecutionResult
from agent.proposal import Proposal
from agent.settings import Settings
from agent.wording import counted
from bot.api.models import (
    AgentRunResponse,
    Artifacts,
    RefreshedTokens,
    StoryArtifact,
    TaskArtifact,
)
from taiga import links


def proposal_response(
    proposal: Proposal,
    warnings: list[str],
    tokens: RefreshedTokens | None,
    dry_run: bool,
    settings: Settings,
) -> AgentRunResponse:
    """Nothing written: the proposal with null ids (existing stories keep theirs)."""
    milestone = proposal.milestone
    stories = [
        StoryArtifact(
            id=None,
            subject=s.subject,
            tasks=[TaskArtifact(id=None, subject=t.subject) for t in s.tasks],
        )
        for s in proposal.stories
    ]
    stories += _existing_story_artifacts(proposal, settings, {})
    summary = proposal.summary or proposal.count_summary()
    if not dry_run:
        summary = f"{summary} Nothing was written to Taiga."
    return AgentRunResponse(
        summary=summary,
        artifacts=Artifacts(
            milestone_id=milestone.existing_id if milestone else None,
            milestone_name=milestone.name if milestone else None,
            user_stories=stories,
        ),
        warnings=warnings,
        usage=proposal.usage,
        tokens=tokens,
        dry_run=dry_run,
        complete=not dry_run,
    )


def applied_response(
    proposal: Proposal,
    result: ExecutionResult,
    warnings: list[str],
    tokens: RefreshedTokens | None,
    settings: Settings,
) -> AgentRunResponse:
    """What the plan created in Taiga, and a warning for each item that is still missing."""
    done = {item.action_key: item for item in result.created}
    task_artifacts = {
        item.action_key: TaskArtifact(id=item.id, subject=item.subject, ref=item.ref, url=item.url)
        for item in result.created_of("task")
    }
    stories: list[StoryArtifact] = []
    for story in proposal.stories:
        item = done.get(f"story:{story.key}")
        stories.append(
            StoryArtifact(
                id=item.id if item else None,
                subject=story.subject,
                ref=item.ref if item else None,
                url=item.url if item else None,
                tasks=[
                    task_artifacts.get(f"task:{t.key}") or TaskArtifact(id=None, subject=t.subject)
                    for t in story.tasks
                ],
            )
        )
    stories += _existing_story_artifacts(proposal, settings, task_artifacts)
    for failed in result.failed:
        label = {"milestone": "sprint", "story": "user story", "task": "task"}[failed.kind]
        warnings.append(f'Not created: {label} "{failed.subject}" ({failed.reason}).')
    return AgentRunResponse(
        summary=_summary(result),
        artifacts=Artifacts(
            milestone_id=result.milestone_id,
            milestone_name=result.milestone_name,
            milestone_url=result.milestone_url,
            user_stories=stories,
        ),
        warnings=warnings,
        usage=proposal.usage,
        tokens=tokens,
        plan_id=result.plan_id,
        complete=result.complete,
    )


def _existing_story_artifacts(
    proposal: Proposal, settings: Settings, created: dict[str, TaskArtifact]
) -> list[StoryArtifact]:
    """Tasks added to stories that were already in Taiga, grouped under those stories."""
    grouped: dict[int, StoryArtifact] = {}
    for task in proposal.tasks_for_existing:
        if task.user_story_id is None:
            continue
        story = grouped.get(task.user_story_id)
        if story is None:
            ref = task.user_story_ref
            story = grouped[task.user_story_id] = StoryArtifact(
                id=task.user_story_id,
                subject=task.user_story_subject or "",
                ref=ref,
                url=links.story_url(settings.taiga_web_url, proposal.project.slug, ref)
                if ref is not None
                else None,
                existing=True,
            )
        story.tasks.append(
            created.get(f"task:{task.key}") or TaskArtifact(id=None, subject=task.subject)
        )
    return list(grouped.values())


def _summary(result: ExecutionResult) -> str:
    parts = []
    if result.created_of("milestone"):
        parts.append(f"sprint {result.milestone_name}")
    parts.append(counted(len(result.created_of("story")), "user story", "user stories"))
    parts.append(counted(len(result.created_of("task")), "task", "tasks"))
    where = f" in {result.milestone_name}" if result.milestone_name else " in the backlog"
    text = "Created " + _join(parts) + where + "."
    if moved := result.created_of("move"):
        text += f" Moved {counted(len(moved), 'existing story', 'existing stories')} there."
    if not result.complete:
        text += f" {counted(len(result.failed), 'item was', 'items were')} not created."
    return text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
