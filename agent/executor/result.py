"""The result of an apply: what exists in Taiga because of the plan (with links into Taiga's web
UI) and what is still missing, with a plain-language reason for each."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agent.executor.run import ApplyRun
from agent.executor.writes import Write, Writes
from agent.proposal import ActionKind
from taiga import links

ResultState = Literal["done", "partial", "executing"]


class CreatedItem(BaseModel):
    """One object that exists in Taiga because of this plan (created now or by an earlier run)."""

    kind: ActionKind
    action_key: str
    subject: str
    id: int
    ref: int | None = None
    url: str
    story_key: str | None = None  # tasks of a new story: its action key ("story:new-story-1")
    user_story_id: int | None = None  # tasks: the story they belong to
    reconciled: bool = False  # found in Taiga after an unknown outcome instead of created again


class FailedItem(BaseModel):
    """One action that is still missing, with a plain-language reason."""

    kind: ActionKind
    action_key: str
    subject: str
    reason: str
    skipped: bool = False  # not attempted because what it depends on is missing
    story_key: str | None = None
    user_story_id: int | None = None


class ExecutionResult(BaseModel):
    """What the plan has produced in Taiga so far, and what is still missing.

    `state` is `done` (complete), `partial` (some actions failed; applying again finishes only what
    is missing) or `executing` (another apply of this plan is running right now; nothing was
    written by this call and the lists show the progress recorded so far).
    """

    plan_id: str
    state: ResultState
    complete: bool
    milestone_id: int | None = None
    milestone_name: str | None = None
    milestone_url: str | None = None
    created: list[CreatedItem] = []
    failed: list[FailedItem] = []
    # What the approved proposal held, and how much of it people left out before approving
    # (0 on results stored before picking existed).
    proposed_stories: int = 0
    proposed_tasks: int = 0
    left_out_stories: int = 0
    left_out_tasks: int = 0

    def created_of(self, kind: ActionKind) -> list[CreatedItem]:
        return [item for item in self.created if item.kind == kind]


def build_result(run: ApplyRun, writes: Writes, state: ResultState) -> ExecutionResult:
    """The run's outcomes and failures as a result; any write with neither is 'not attempted'."""
    milestone = run.proposal.milestone
    milestone_url = (
        links.sprint_url(run.web_url, run.proposal.project.slug, run.milestone_slug)
        if run.milestone_slug
        else None
    )
    created: list[CreatedItem] = []
    failed: list[FailedItem] = []
    for write in writes.all():
        outcome = run.outcomes.get(write.key)
        story_id = _story_id(run, write) if write.kind == "task" else None
        if outcome is not None:
            created.append(
                CreatedItem(
                    kind=write.kind,
                    action_key=write.key,
                    subject=write.subject,
                    id=outcome.id,
                    ref=outcome.ref,
                    url=_url(run, write.kind, outcome.ref, milestone_url),
                    story_key=write.story_key,
                    user_story_id=story_id,
                    reconciled=outcome.reconciled,
                )
            )
            continue
        reason, skipped = run.failures.get(write.key, ("not attempted yet", True))
        failed.append(
            FailedItem(
                kind=write.kind,
                action_key=write.key,
                subject=write.subject,
                reason=reason,
                skipped=skipped,
                story_key=write.story_key,
                user_story_id=story_id,
            )
        )
    complete = not failed and state != "executing"
    proposal = run.proposal
    left_out_stories, left_out_tasks = proposal.left_out_counts()
    return ExecutionResult(
        plan_id=run.plan_id,
        state=state if state == "executing" else ("done" if complete else "partial"),
        complete=complete,
        milestone_id=run.milestone_id,
        milestone_name=milestone.name if milestone else None,
        milestone_url=milestone_url,
        created=created,
        failed=failed,
        proposed_stories=len(proposal.stories),
        proposed_tasks=proposal.task_count,
        left_out_stories=left_out_stories,
        left_out_tasks=left_out_tasks,
    )


def _story_id(run: ApplyRun, task: Write) -> int | None:
    """The Taiga story a task belongs to: the existing one, or its new story once created."""
    if task.story_key is not None and task.story_key in run.outcomes:
        return run.outcomes[task.story_key].id
    return task.user_story_id


def _url(run: ApplyRun, kind: ActionKind, ref: int | None, milestone_url: str | None) -> str:
    slug = run.proposal.project.slug
    if kind == "milestone":
        return milestone_url or f"{run.web_url.rstrip('/')}/project/{slug}/taskboard"
    if ref is None:
        return f"{run.web_url.rstrip('/')}/project/{slug}"
    if kind in ("story", "move"):
        return links.story_url(run.web_url, slug, ref)
    return links.task_url(run.web_url, slug, ref)
