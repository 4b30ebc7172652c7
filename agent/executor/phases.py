"""The phases of an apply, in order: the sprint (if new), then every moved story
(`agent.executor.moves`), then every new story, then every task.

Each phase says how to create one of its objects in Taiga and how to find the ones whose
outcome is unknown; `ApplyRun.run_phase` does the rest. A phase whose parent is missing is
skipped: no stories without the sprint, no tasks without their story.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agent.errors import GoneSinceProposal
from agent.executor.moves import SKIPPED_NOT_MOVED, move_phase
from agent.executor.run import ApplyRun
from agent.executor.writes import Outcome, Write, Writes, with_link_back
from taiga.errors import TaigaError, ValidationFailed

log = logging.getLogger(__name__)

SKIPPED_NO_STORY = "skipped: its story was not created"
SKIPPED_NO_SPRINT = "skipped: the sprint was not created"


async def run_phases(run: ApplyRun, writes: Writes) -> None:
    if await _sprint_phase(run, writes.sprint):
        if run.milestone_id is not None and run.milestone_slug is None:
            await _fill_milestone_slug(run)
        await move_phase(run, writes.moves)
        await _story_phase(run, writes.stories)
        await _task_phase(run, writes.tasks)
    else:
        for write in [*writes.moves, *writes.stories, *writes.tasks]:
            run.fail(write, SKIPPED_NO_SPRINT, skipped=True)


async def _sprint_phase(run: ApplyRun, write: Write | None) -> bool:
    """Make sure the sprint exists; False when it could not be created."""
    milestone = run.proposal.milestone
    if milestone is None:
        return True  # no sprint: stories go to the backlog
    if write is None:
        run.milestone_id = milestone.existing_id
        run.milestone_slug = milestone.slug
        return True

    async def create(w: Write) -> Outcome:
        try:
            created = await run.taiga.create_milestone(run.project_id, w.subject, start, finish)
        except ValidationFailed as error:
            if "name" not in error.fields:
                raise
            existing = await run.taiga.get_milestone_by_name(run.project_id, milestone.name)
            if existing is None:
                raise
            run.milestone_slug = existing.slug
            return Outcome(id=existing.id, reconciled=True)  # someone created it meanwhile
        run.milestone_slug = created.slug
        return Outcome(id=created.id)

    async def find(writes: Sequence[Write]) -> dict[str, Outcome]:
        existing = await run.taiga.get_milestone_by_name(run.project_id, milestone.name)
        if existing is None:
            return {}
        run.milestone_slug = existing.slug
        return {writes[0].key: Outcome(id=existing.id, reconciled=True)}

    if milestone.estimated_start is None or milestone.estimated_finish is None:
        run.fail(write, "the proposal gives no start and finish dates for the new sprint")
        return False
    start, finish = milestone.estimated_start, milestone.estimated_finish
    if not run.ledger.is_done(write):
        await run.report("sprint", f"Creating sprint {milestone.name}")
    await run.run_phase([write], create, find)
    outcome = run.outcomes.get(write.key)
    if outcome is None:
        return False
    run.milestone_id = outcome.id
    return True


async def _fill_milestone_slug(run: ApplyRun) -> None:
    assert run.milestone_id is not None
    try:
        run.milestone_slug = (await run.taiga.get_milestone(run.milestone_id)).slug
    except TaigaError:
        log.info("could not read the slug of milestone %s", run.milestone_id)


async def _story_phase(run: ApplyRun, stories: Sequence[Write]) -> None:
    if not stories:
        return
    total = len(stories)
    counter = _Counter(sum(1 for s in stories if run.ledger.is_done(s)))

    async def create(write: Write) -> Outcome:
        async with _sprint_must_exist(run):
            story = await run.taiga.create_user_story(
                run.project_id,
                write.subject,
                description=with_link_back(write.description, run.thread_link),
                milestone_id=run.milestone_id,
                tags=list(write.tags) or None,
                assigned_to=write.assigned_to,
                due_date=write.due_date,
                external_reference=run.reference(write),
            )
        return Outcome(id=story.id, ref=story.ref, version=story.version)

    async def find(writes: Sequence[Write]) -> dict[str, Outcome]:
        me = await run.me_id()
        existing = await run.taiga.list_user_stories(
            run.project_id, milestone_id=run.milestone_id, backlog=run.milestone_id is None
        )
        return run.reconciler.adopt_all(writes, lambda _write: existing, me)

    async def on_done() -> None:
        await run.report("stories", f"Creating stories {counter.bump()}/{total}")

    await run.report("stories", f"Creating stories {counter.value}/{total}")
    await run.run_phase(stories, create, find, on_done)


async def _task_phase(run: ApplyRun, tasks: Sequence[Write]) -> None:
    ready: list[Write] = []
    for task in tasks:
        if task.story_key is not None and task.story_key not in run.outcomes:
            moved = task.story_key.startswith("move:")
            run.fail(task, SKIPPED_NOT_MOVED if moved else SKIPPED_NO_STORY, skipped=True)
        else:
            ready.append(task)
    if not ready:
        return
    total = len(ready)
    counter = _Counter(sum(1 for t in ready if run.ledger.is_done(t)))

    def story_id(write: Write) -> int | None:
        if write.story_key is not None:
            return run.outcomes[write.story_key].id
        return write.user_story_id

    async def create(write: Write) -> Outcome:
        async with _sprint_must_exist(run):
            task = await run.taiga.create_task(
                run.project_id,
                write.subject,
                user_story_id=story_id(write),
                milestone_id=run.milestone_id,
                description=write.description,
                assigned_to=write.assigned_to,
                due_date=write.due_date,
                external_reference=run.reference(write),
            )
        return Outcome(id=task.id, ref=task.ref, version=task.version)

    async def find(writes: Sequence[Write]) -> dict[str, Outcome]:
        me = await run.me_id()
        if run.milestone_id is not None:
            existing = await run.taiga.list_tasks(
                project_id=run.project_id, milestone_id=run.milestone_id
            )
        else:
            existing = []
            for sid in {story_id(w) for w in writes}:
                existing += await run.taiga.list_tasks(user_story_id=sid)
        return run.reconciler.adopt_all(
            writes, lambda write: [t for t in existing if t.user_story == story_id(write)], me
        )

    async def on_done() -> None:
        await run.report("tasks", f"Creating tasks {counter.bump()}/{total}")

    await run.report("tasks", f"Creating tasks {counter.value}/{total}")
    await run.run_phase(ready, create, find, on_done)


@asynccontextmanager
async def _sprint_must_exist(run: ApplyRun) -> AsyncIterator[None]:
    """Taiga's 'Invalid pk' for the sprint (deleted since the plan was made) as a plain error."""
    try:
        yield
    except ValidationFailed as error:
        if "milestone" not in error.fields or run.proposal.milestone is None:
            raise
        name = run.proposal.milestone.name
        raise GoneSinceProposal(
            f"Taiga could not find sprint {name}: it was deleted in Taiga after the plan was made, "
            "so plan again."
        ) from None


@dataclass
class _Counter:
    value: int = 0

    def bump(self) -> int:
        self.value += 1
        return self.value
