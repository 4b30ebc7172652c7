"""The write tools: validated and recorded into the proposal, never sent to Taiga.

`planning_gate` says what the acting user's permissions leave possible (no `add_us`: nothing;
no `add_task`: stories without tasks; no target sprint: nothing can be placed). `Recorder` turns
each write call into proposed stories, moves of existing stories, tasks and sprint dates,
answering with placeholder references (`new-story-1`, `new-story-1/task-2`, `move-<id>`,
`existing-<id>/task-1`) later calls may use. A story that likely duplicates an existing open one
is recorded but left out, with a pointer to the existing story. A call that cannot be recorded
raises `ToolError` with a sentence for the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent import tools as t
from agent.budgets import BudgetTracker
from agent.people import People
from agent.planning.context import PlanScope, other_stories_note
from agent.planning.duplicates import likely_duplicate
from agent.planning.reads import within_deadline
from agent.proposal import ExistingStory, ProposedMove, ProposedStory, ProposedTask
from taiga.errors import NotFound, TaigaError
from taiga.models import UserStory
from taiga.names import normalise_name

if TYPE_CHECKING:
    from taiga.client import TaigaSession

_NOT_WRITTEN = "Proposed for approval; nothing was written to Taiga."


def planning_gate(scope: PlanScope) -> tuple[list[str], bool]:
    """Warnings for the person about what this run cannot do, and whether it may plan at all."""
    name = scope.project.name
    if t.ADD_STORY not in scope.perms:
        nothing = f"You may not add user stories in project {name}, so nothing can be created."
        return [nothing], False
    warnings: list[str] = []
    if t.ADD_TASK not in scope.perms:
        warnings.append(
            f"You may not add tasks in project {name}, so stories are proposed without tasks."
        )
    if scope.milestone is None:
        existing = ", ".join(m.name for m in scope.milestones) or "none"
        warnings.append(
            f"Sprint {scope.sprint_name!r} does not exist in project {name}, and you may not "
            f"create sprints there, so the stories cannot be placed. Existing sprints: "
            f"{existing}."
        )
        return warnings, False
    target_id = scope.milestone.existing_id
    if any(m.id == target_id and m.closed for m in scope.milestones):
        warnings.append(f"Sprint {scope.milestone.name} is closed.")
    if (note := other_stories_note(scope)) is not None:
        warnings.append(note)
    return warnings, True


class Recorder:
    """The proposed stories and tasks of one run; the sprint's dates are kept in `scope`."""

    def __init__(
        self, *, taiga: TaigaSession, tracker: BudgetTracker, scope: PlanScope, people: People
    ) -> None:
        self.taiga = taiga
        self.tracker = tracker
        self.scope = scope
        self.people = people
        self.stories: list[ProposedStory] = []
        self.tasks_for_existing: list[ProposedTask] = []
        self.moves: list[ProposedMove] = []
        self.left_out: list[str] = []  # likely duplicates, until a person puts them back
        self.questions: list[str] = []  # who the minutes meant, where no single member matched

    async def record(self, name: str, args: BaseModel) -> Any:
        """Record one write call; returns the tool's answer for the model."""
        if isinstance(args, t.CreateUserStoryInput):
            return self._record_story(args)
        if isinstance(args, t.CreateTaskInput):
            return await self._record_task(args)
        if isinstance(args, t.CreateMilestoneInput):
            return self._record_milestone(args)
        if isinstance(args, t.MoveUserStoryInput):
            return await self._record_move(args)
        raise t.ToolError(f"{name} cannot be recorded.")  # pragma: no cover - registry mismatch

    def _record_story(self, args: t.CreateUserStoryInput) -> Any:
        if args.tasks and t.ADD_TASK not in self.scope.perms:
            raise t.ToolError(
                "You may not add tasks in this project; propose the story without tasks."
            )
        wanted = normalise_name(args.subject)
        for story in self.stories:
            if normalise_name(story.subject) == wanted:
                raise t.ToolError(f"This story was already proposed as {story.key}.")
        for existing in self.scope.sprint_stories:
            if normalise_name(existing.subject) == wanted:
                raise t.ToolError(
                    f"Story #{existing.ref} (id {existing.id}) with this subject is already in "
                    f"{self.scope.sprint_name}; add tasks to it with taiga_create_task instead."
                )
        key = f"new-story-{len(self.stories) + 1}"
        duplicate = self._duplicate_of(args.subject)
        owner = self._owner(args.assignee)
        task_owners = [self._owner(task.assignee) for task in args.tasks]
        tasks = [
            ProposedTask(
                key=f"{key}/task-{n}", subject=task.subject, description=task.description,
                due_date=task.due_date, **task_owner,
            )
            for n, (task, task_owner) in enumerate(zip(args.tasks, task_owners, strict=True), 1)
        ]
        self.stories.append(
            ProposedStory(
                key=key,
                subject=args.subject,
                description=args.description,
                tags=list(dict.fromkeys(args.tags)),
                tasks=tasks,
                due_date=args.due_date,
                duplicate_of=duplicate,
                **owner,
            )
        )
        answer = self._answer(key, tasks=[task.key for task in tasks])
        if duplicate is not None:
            self.left_out.append(key)
            answer["note"] = (
                f"Left out: it looks like existing story #{duplicate.ref} (id {duplicate.id}) "
                f"{duplicate.subject!r}. Propose moving that story into the sprint or tasks "
                "under it instead; a person can still put this one back."
            )
        return answer

    def _answer(self, key: str, **extra: Any) -> dict[str, Any]:
        """The tool's answer; it repeats the open questions about owners, if any."""
        answer = {"recorded": True, "reference": key, **extra, "note": _NOT_WRITTEN}
        if self.questions:
            answer["unassigned"] = list(self.questions)
        return answer

    def _owner(self, assignee: int | str | None) -> dict[str, Any]:
        """`assigned_to` and `assignee` of an item: a member, or nobody (a question asked)."""
        if assignee is None:
            return {}
        if isinstance(assignee, int) or assignee.isdigit():
            member = self.people.member(int(assignee))
            if member is None:
                raise t.ToolError(
                    f"User {assignee} is not a member of project {self.scope.project.name}. "
                    "An assignee must be a member's user_id from the context, or the name as "
                    "the minutes write it; leave it out when the minutes name nobody."
                )
        else:
            owner = self.people.resolve(assignee)
            if owner.question and owner.question not in self.questions:
                self.questions.append(owner.question)
            member = owner.member
        if member is None:
            return {}
        return {"assigned_to": member.id, "assignee": member.full_name_display or member.username}

    def _duplicate_of(self, subject: str) -> ExistingStory | None:
        """The existing open story (any sprint or the backlog) `subject` likely duplicates."""
        scope = self.scope
        existing = [s for s in scope.sprint_stories if not s.is_closed]
        found = likely_duplicate(subject, existing + scope.other_open_stories)
        if found is None:
            return None
        return ExistingStory(
            id=found.id, ref=found.ref, subject=found.subject,
            sprint=scope.sprint_name_of(found.milestone),
        )  # fmt: skip

    async def _record_move(self, args: t.MoveUserStoryInput) -> Any:
        story = await self._story_in_project(args.user_story)
        key = f"move-{story.id}"
        target = self.scope.milestone
        assert target is not None  # the loop runs only with a target sprint
        if target.existing_id is not None and story.milestone == target.existing_id:
            raise t.ToolError(f"Story #{story.ref} (id {story.id}) is already in {target.name}.")
        if story.is_closed:
            raise t.ToolError(f"Story #{story.ref} (id {story.id}) is closed; it is not moved.")
        if all(m.key != key for m in self.moves):
            self.moves.append(
                ProposedMove(
                    key=key,
                    story_id=story.id,
                    ref=story.ref,
                    subject=story.subject,
                    from_milestone_id=story.milestone,
                    from_sprint=self.scope.sprint_name_of(story.milestone),
                    version=story.version,
                )
            )
        return {"recorded": True, "reference": key, "note": _NOT_WRITTEN}

    async def _record_task(self, args: t.CreateTaskInput) -> Any:
        if isinstance(args.user_story, str):
            task = self._task_for_proposed(args.user_story, args)
        else:
            task = await self._task_for_existing(args.user_story, args)
        return self._answer(task.key)

    def _task_for_proposed(self, key: str, args: t.CreateTaskInput) -> ProposedTask:
        story = next((s for s in self.stories if s.key == key), None)
        if story is None:
            raise t.ToolError(
                f"No story {key} was proposed in this run "
                f"(proposed: {', '.join(s.key for s in self.stories) or 'none'})."
            )
        if len(story.tasks) >= t.MAX_TASKS_PER_STORY:
            raise t.ToolError(f"{story.key} already has {t.MAX_TASKS_PER_STORY} tasks.")
        task = ProposedTask(
            key=f"{story.key}/task-{len(story.tasks) + 1}",
            subject=args.subject,
            description=args.description,
            due_date=args.due_date,
            **self._owner(args.assignee),
        )
        story.tasks.append(task)
        return task

    async def _task_for_existing(self, story_id: int, args: t.CreateTaskInput) -> ProposedTask:
        existing = await self._existing_story(story_id)
        prefix = f"existing-{existing.id}/"
        siblings = [x for x in self.tasks_for_existing if x.key.startswith(prefix)]
        if len(siblings) >= t.MAX_TASKS_PER_STORY:
            raise t.ToolError(f"Story {existing.id} already has {len(siblings)} new tasks.")
        task = ProposedTask(
            key=f"{prefix}task-{len(siblings) + 1}",
            subject=args.subject,
            description=args.description,
            user_story_id=existing.id,
            user_story_ref=existing.ref,
            user_story_subject=existing.subject,
            due_date=args.due_date,
            **self._owner(args.assignee),
        )
        self.tasks_for_existing.append(task)
        return task

    async def _existing_story(self, story_id: int) -> UserStory:
        """The story, read if the run has not seen it; it must be in the target sprint or be
        moved there by this plan."""
        scope = self.scope
        story = await self._story_in_project(story_id)
        target = scope.milestone.existing_id if scope.milestone is not None else None
        moved = any(m.story_id == story.id for m in self.moves)
        if not moved and (target is None or story.milestone != target):
            raise t.ToolError(
                f"Story #{story.ref} (id {story.id}) is not in {scope.sprint_name}; this plan only "
                "adds tasks to stories in its own sprint. Move it into the sprint first "
                "(taiga_move_user_story) or propose a new story instead."
            )
        return story

    async def _story_in_project(self, story_id: int) -> UserStory:
        """A story of the run's project, read if the run has not seen it."""
        scope = self.scope
        story = scope.known_stories.get(story_id)
        if story is None:
            try:
                story = await within_deadline(self.tracker, self.taiga.get_user_story(story_id))
            except NotFound:
                story = None
            except TaigaError as exc:
                raise t.ToolError(f"Could not read story {story_id}: {exc.message}") from None
        if story is None or story.project != scope.project.id:
            raise t.ToolError(
                f"There is no story with id {story_id} in project {scope.project.name}."
            )
        scope.known_stories[story.id] = story
        return story

    def _record_milestone(self, args: t.CreateMilestoneInput) -> Any:
        current = self.scope.milestone
        assert current is not None  # the loop runs only with a target sprint
        if not current.to_create:
            raise t.ToolError(
                f"Sprint {current.name} already exists (id {current.existing_id}); "
                "stories go there."
            )
        if normalise_name(args.name) != normalise_name(current.name):
            raise t.ToolError(
                f"Only the target sprint {current.name!r} can be created in this run."
            )
        if args.estimated_finish <= args.estimated_start:
            raise t.ToolError("estimated_finish must be after estimated_start.")
        self.scope.milestone = current.model_copy(
            update={
                "estimated_start": args.estimated_start,
                "estimated_finish": args.estimated_finish,
            }
        )
        return {
            "recorded": True,
            "reference": "new-milestone",
            "name": current.name,
            "estimated_start": args.estimated_start.isoformat(),
            "estimated_finish": args.estimated_finish.isoformat(),
        }
