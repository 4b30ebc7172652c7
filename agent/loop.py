"""The gated Claude planning loop, in propose mode: nothing is written to Taiga here.

`propose()` reads the project with the acting user's own token (its `my_permissions` decide which
tools exist for the run), prefetches what the model will need concurrently, and runs a bounded
tool loop on the Messages API. Read tools run for real (a turn's reads run concurrently); write
tools are validated and recorded into a `Proposal`, answering with placeholder references such
as `new-story-1`. Budgets stop the loop and the reason is reported, never silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anthropic as anthropic_sdk
from pydantic import BaseModel

from agent import tools as t
from agent.budgets import BudgetExceeded, Budgets, BudgetTracker, StopReason
from agent.errors import PlanningError, model_failure
from agent.prompts import SYSTEM_PROMPT, first_message
from agent.proposal import (
    ProjectInfo,
    Proposal,
    ProposedMilestone,
    ProposedStory,
    ProposedTask,
    Usage,
)
from taiga.errors import NotFound, TaigaError, Unavailable
from taiga.models import Milestone, Project, UserStory
from taiga.names import milestone_named, normalise_name

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from taiga.client import Clock, TaigaSession

log = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
T = TypeVar("T")

DEFAULT_MAX_TOKENS = 16_000
DEFAULT_SPRINT_DAYS = 14
MAX_MODEL_RETRIES = 4
MAX_REQUEST_SECONDS = 600.0  # one model call, when the deadline leaves more than that
MAX_LISTED_STORIES = 300
RETRYABLE_STATUS = frozenset({408, 409, 429})


async def propose(
    *,
    anthropic: AsyncAnthropic,
    model: str,
    taiga: TaigaSession,
    project_ref: Project | int | str,
    sprint_name: str,
    minutes: str,
    budgets: Budgets,
    clock: Clock,
    progress: Progress | None = None,
    today: date | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Proposal:
    """Plan `sprint_name` of a project from meeting minutes; returns the proposal, writes nothing.

    `project_ref` is an id, a slug, or a `Project` the caller already read with this same
    session (so it is not fetched twice). Raises `TaigaError` if the project cannot be read,
    `PlanningError` if the model API fails for good. Budget stops, cut-off answers and refusals
    are reported in the proposal instead.
    """
    tracker = BudgetTracker(budgets, clock)
    run = _Run(
        client=anthropic.with_options(max_retries=0),  # our retry layer is the only one
        model=model,
        taiga=taiga,
        tracker=tracker,
        progress=progress,
        max_tokens=max_tokens,
    )
    await run.notify("Reading the project in Taiga…")
    try:
        project, milestones, sprint_stories = await run.in_time(
            _prefetch(taiga, project_ref, sprint_name)
        )
    except BudgetExceeded:
        raise Unavailable(
            f"Taiga did not answer within the planning time limit of "
            f"{budgets.deadline_seconds:g} s."
        ) from None
    run.start(project, milestones, sprint_stories, sprint_name, today or date.today())
    if run.can_plan:
        await run.loop(minutes)
    return run.finish()


async def _prefetch(
    taiga: TaigaSession, project_ref: Project | int | str, sprint_name: str
) -> tuple[Project, list[Milestone], list[UserStory]]:
    """The project first (id, permissions, sprints, members), then sprints and stories at once."""
    if isinstance(project_ref, Project):
        project = project_ref
    elif isinstance(project_ref, int) or project_ref.strip().isdigit():
        project = await taiga.get_project(int(project_ref))
    else:
        project = await taiga.get_project_by_slug(project_ref.strip())
    perms = project.my_permissions
    target = milestone_named(project.milestones, sprint_name)

    async def milestones() -> list[Milestone]:
        return await taiga.list_milestones(project.id) if "view_milestones" in perms else []

    async def stories() -> list[UserStory]:
        if target is None or "view_us" not in perms:
            return []
        return await taiga.list_user_stories(project.id, milestone_id=target.id)

    found_milestones, found_stories = await asyncio.gather(milestones(), stories())
    return project, found_milestones, found_stories


class _Run:
    def __init__(
        self,
        *,
        client: AsyncAnthropic,
        model: str,
        taiga: TaigaSession,
        tracker: BudgetTracker,
        progress: Progress | None,
        max_tokens: int,
    ) -> None:
        self.client = client
        self.model = model
        self.taiga = taiga
        self.tracker = tracker
        self.progress = progress
        self.max_tokens = max_tokens
        self.usage = Usage()
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.stopped: StopReason | None = None
        self.model_summary = ""
        self.stories: list[ProposedStory] = []
        self.tasks_for_existing: list[ProposedTask] = []
        self.messages: list[dict[str, Any]] = []
        self.can_plan = False

    # --- set-up: permissions, the target sprint, what the model may do --------------------

    def start(
        self,
        project: Project,
        milestones: list[Milestone],
        sprint_stories: list[UserStory],
        sprint_name: str,
        today: date,
    ) -> None:
        self.project = project
        self.milestones = milestones
        self.sprint_stories = sprint_stories
        self.sprint_name = " ".join(sprint_name.split())
        self.perms = project.my_permissions
        self.offered = {spec.name: spec for spec in t.offered_tools(self.perms)}
        self.known_stories: dict[int, UserStory] = {s.id: s for s in sprint_stories}
        self.milestone = self._target_milestone(today)
        name = project.name

        if t.ADD_STORY not in self.perms:
            self.warnings.append(
                f"You may not add user stories in project {name}, so nothing can be created."
            )
            return
        if t.ADD_TASK not in self.perms:
            self.warnings.append(
                f"You may not add tasks in project {name}, so stories are proposed without tasks."
            )
        if self.milestone is None:
            existing = ", ".join(m.name for m in milestones) or "none"
            self.warnings.append(
                f"Sprint {self.sprint_name!r} does not exist in project {name}, and you may not "
                f"create sprints there, so the stories cannot be placed. Existing sprints: "
                f"{existing}."
            )
            return
        target_id = self.milestone.existing_id
        if any(m.id == target_id and m.closed for m in milestones):
            self.warnings.append(f"Sprint {self.milestone.name} is closed.")
        self.can_plan = True

    def _target_milestone(self, today: date) -> ProposedMilestone | None:
        milestone = milestone_named(self.milestones, self.sprint_name)
        if milestone is not None:
            return ProposedMilestone(
                existing_id=milestone.id,
                name=milestone.name,
                estimated_start=milestone.estimated_start,
                estimated_finish=milestone.estimated_finish,
                slug=milestone.slug,
            )
        # listed in the project but not readable in detail
        ref = milestone_named(self.project.milestones, self.sprint_name)
        if ref is not None:
            return ProposedMilestone(existing_id=ref.id, name=ref.name, slug=ref.slug)
        if t.ADD_SPRINT not in self.perms:
            return None
        start, finish = next_sprint_dates(self.milestones, today)
        return ProposedMilestone(
            name=named_like_the_others(self.sprint_name, self.milestones),
            estimated_start=start,
            estimated_finish=finish,
            to_create=True,
        )

    # --- the loop -------------------------------------------------------------------------

    async def notify(self, text: str) -> None:
        if self.progress is None:
            return
        try:
            await self.progress(text)
        except Exception:  # progress is cosmetic; never let it break planning
            log.warning("progress callback failed", exc_info=True)

    async def in_time(self, awaitable: Awaitable[T]) -> T:
        """Await a Taiga read, but not past the run's deadline (the session may have none)."""
        try:
            async with asyncio.timeout(max(self.tracker.remaining(), 0.0)):
                return await awaitable
        except TimeoutError:
            raise BudgetExceeded(StopReason.DEADLINE) from None

    async def loop(self, minutes: str) -> None:
        params = t.anthropic_tool_params(list(self.offered.values()))
        first = first_message(
            context=self._context(),
            notes=self.warnings,
            sprint_name=self.sprint_name,
            minutes=minutes,
        )
        self.messages = [{"role": "user", "content": first}]
        try:
            while not await self._step(params):
                pass
        except BudgetExceeded as stop:
            self.stopped = stop.reason
            self.warnings.append(self.tracker.budgets.describe(stop.reason))

    async def _step(self, params: list[dict[str, Any]]) -> bool:
        """One model call and the tool calls it makes; True when the run is finished."""
        self.tracker.begin_step()
        await self.notify(f"Asking Claude to plan (step {self.tracker.steps})…")
        response = await self._create(self.messages, params)
        self._count(response)
        self._add_assistant_turn(response)
        reason = response.stop_reason
        if reason == "pause_turn":  # the API paused a long turn: send it back to continue it
            return False
        if reason in ("max_tokens", "model_context_window_exceeded"):
            raise BudgetExceeded(StopReason.MAX_TOKENS)
        if reason == "refusal":
            raise BudgetExceeded(StopReason.REFUSAL)
        calls = [block for block in response.content if block.type == "tool_use"]
        if reason == "tool_use" and calls:
            results = await self._run_tools(calls)
            if all(r.get("is_error") is None for r in results) and self._all_writes(calls):
                # Every call was a proposed write and all were recorded: the plan is complete
                # without another model call (the turn's text is its summary).
                self.model_summary = _last_line(response)
                return True
            self.messages.append({"role": "user", "content": results})
            return False
        self.model_summary = _last_line(response)  # end_turn, stop_sequence: the model is done
        return True

    def _add_assistant_turn(self, response: Any) -> None:
        """Append the answer; a continued (paused) turn extends the assistant message it
        continues, so roles keep alternating."""
        content = _assistant_content(response)
        last = self.messages[-1]
        if last["role"] == "assistant":
            last["content"] = [*last["content"], *content]
        elif content:
            self.messages.append({"role": "assistant", "content": content})

    def _all_writes(self, calls: list[Any]) -> bool:
        return bool(calls) and all(
            (spec := self.offered.get(c.name)) is not None and spec.kind == "write" for c in calls
        )

    def _count(self, response: Any) -> None:
        u = response.usage
        self.usage.model_calls += 1
        self.usage.input_tokens += u.input_tokens or 0
        self.usage.output_tokens += u.output_tokens or 0
        self.usage.cache_read_tokens += getattr(u, "cache_read_input_tokens", None) or 0
        self.usage.cache_creation_tokens += getattr(u, "cache_creation_input_tokens", None) or 0

    async def _create(
        self, messages: list[dict[str, Any]], tool_params: list[dict[str, Any]]
    ) -> Any:
        """One model call with our single retry layer, bounded by the run's deadline."""
        attempt = 0
        while True:
            remaining = self.tracker.remaining()
            if remaining <= 0:
                raise BudgetExceeded(StopReason.DEADLINE)
            timeout = min(remaining, MAX_REQUEST_SECONDS)
            try:
                return await self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=[
                        {
                            "type": "text",
                            "text": SYSTEM_PROMPT,
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                    tools=tool_params,  # type: ignore[arg-type]
                    messages=messages,  # type: ignore[arg-type]
                    timeout=timeout,
                )
            except anthropic_sdk.APITimeoutError as exc:
                if timeout >= remaining:  # the call was cut to the deadline, which has passed
                    raise BudgetExceeded(StopReason.DEADLINE) from exc
                await self._before_retry(exc, attempt)
            except anthropic_sdk.APIError as exc:
                await self._before_retry(exc, attempt)
            attempt += 1

    async def _before_retry(self, exc: anthropic_sdk.APIError, attempt: int) -> None:
        """Wait before the next attempt, or raise: not retryable, out of attempts, or no time."""
        if not _retryable(exc) or attempt >= MAX_MODEL_RETRIES:
            raise PlanningError(model_failure(exc)) from exc
        wait = _retry_after(exc)
        if wait is None:
            wait = min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
        if wait >= self.tracker.remaining():
            raise BudgetExceeded(StopReason.DEADLINE) from exc
        log.info("Anthropic API %s; retrying in %.1f s", _status(exc), wait)
        await self.tracker.clock.sleep(wait)

    async def _run_tools(self, calls: list[Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any] | None] = [None] * len(calls)
        reads: list[tuple[int, t.ToolSpec, BaseModel]] = []
        for i, call in enumerate(calls):
            spec = self.offered.get(call.name)
            write = spec is not None and spec.kind == "write"
            self.tracker.admit_call(call.name, call.input, write=write)  # may stop the run
            self.usage.tool_calls = self.tracker.tool_calls
            try:
                if spec is None:
                    raise t.ToolError(self._unavailable(call.name))
                args = t.parse_input(spec, call.input)
                if spec.kind == "read":
                    reads.append((i, spec, args))
                    continue
                results[i] = _result(call.id, await self._record(spec.name, args))
            except t.ToolError as exc:
                results[i] = _result(call.id, str(exc), error=True)
        outcomes = await self.in_time(
            asyncio.gather(*(self._read(spec.name, args) for _, spec, args in reads))
        )
        for (i, _, _), (content, is_error) in zip(reads, outcomes, strict=True):
            results[i] = _result(calls[i].id, content, error=is_error)
        self.tracker.check_deadline()
        return [r for r in results if r is not None]

    def _unavailable(self, name: str) -> str:
        offered = ", ".join(self.offered) or "none"
        if name in t.TOOLS:
            spec = t.TOOLS[name]
            return (
                f"{name} is not available in this run: it needs the {spec.permission} permission "
                f"in project {self.project.name}, which the requesting user does not have. "
                f"Available tools: {offered}."
            )
        return f"There is no tool named {name!r}. Available tools: {offered}."

    # --- read tools (real Taiga reads with the user's token) ---------------------------------

    async def _read(self, name: str, args: BaseModel) -> tuple[str, bool]:
        try:
            value = await getattr(self, f"_{name}")(args)
        except t.ToolError as exc:
            return str(exc), True
        except TaigaError as exc:
            return f"Taiga refused the read: {exc.message or type(exc).__name__}", True
        return _json(value), False

    async def _taiga_get_project(self, args: BaseModel) -> Any:
        self.project = await self.taiga.get_project(self.project.id)
        return self._project_view()

    async def _taiga_list_milestones(self, args: BaseModel) -> Any:
        return [_milestone_view(m) for m in await self.taiga.list_milestones(self.project.id)]

    async def _taiga_get_milestone_by_name(self, args: BaseModel) -> Any:
        assert isinstance(args, t.MilestoneByNameInput)
        found = await self.taiga.get_milestone_by_name(self.project.id, args.name)
        return None if found is None else _milestone_view(found)

    async def _taiga_list_user_stories(self, args: BaseModel) -> Any:
        assert isinstance(args, t.ListUserStoriesInput)
        stories = await self.taiga.list_user_stories(
            self.project.id, milestone_id=args.milestone_id, backlog=args.backlog
        )
        for story in stories:
            self.known_stories.setdefault(story.id, story)
        listed = [_story_view(s) for s in stories[:MAX_LISTED_STORIES]]
        if len(stories) > MAX_LISTED_STORIES:
            return {"stories": listed, "note": f"first {MAX_LISTED_STORIES} of {len(stories)}"}
        return listed

    async def _taiga_list_members(self, args: BaseModel) -> Any:
        return [_member_view(m) for m in self.project.members]

    # --- write tools (validated and recorded, never sent) -----------------------------------

    async def _record(self, name: str, args: BaseModel) -> Any:
        if isinstance(args, t.CreateUserStoryInput):
            return self._record_story(args)
        if isinstance(args, t.CreateTaskInput):
            return await self._record_task(args)
        if isinstance(args, t.CreateMilestoneInput):
            return self._record_milestone(args)
        raise t.ToolError(f"{name} cannot be recorded.")  # pragma: no cover - registry mismatch

    def _record_story(self, args: t.CreateUserStoryInput) -> Any:
        if args.tasks and t.ADD_TASK not in self.perms:
            raise t.ToolError(
                "You may not add tasks in this project; propose the story without tasks."
            )
        wanted = normalise_name(args.subject)
        for story in self.stories:
            if normalise_name(story.subject) == wanted:
                raise t.ToolError(f"This story was already proposed as {story.key}.")
        for existing in self.sprint_stories:
            if normalise_name(existing.subject) == wanted:
                raise t.ToolError(
                    f"Story #{existing.ref} (id {existing.id}) with this subject is already in "
                    f"{self.sprint_name}; add tasks to it with taiga_create_task instead."
                )
        key = f"new-story-{len(self.stories) + 1}"
        tasks = [
            ProposedTask(key=f"{key}/task-{n}", subject=task.subject, description=task.description)
            for n, task in enumerate(args.tasks, start=1)
        ]
        self.stories.append(
            ProposedStory(
                key=key,
                subject=args.subject,
                description=args.description,
                tags=list(dict.fromkeys(args.tags)),
                tasks=tasks,
            )
        )
        return {
            "recorded": True,
            "reference": key,
            "tasks": [task.key for task in tasks],
            "note": "Proposed for approval; nothing was written to Taiga.",
        }

    async def _record_task(self, args: t.CreateTaskInput) -> Any:
        if isinstance(args.user_story, str):
            story = next((s for s in self.stories if s.key == args.user_story), None)
            if story is None:
                raise t.ToolError(
                    f"No story {args.user_story} was proposed in this run "
                    f"(proposed: {', '.join(s.key for s in self.stories) or 'none'})."
                )
            if len(story.tasks) >= t.MAX_TASKS_PER_STORY:
                raise t.ToolError(f"{story.key} already has {t.MAX_TASKS_PER_STORY} tasks.")
            task = ProposedTask(
                key=f"{story.key}/task-{len(story.tasks) + 1}",
                subject=args.subject,
                description=args.description,
            )
            story.tasks.append(task)
        else:
            existing = await self._existing_story(args.user_story)
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
            )
            self.tasks_for_existing.append(task)
        return {
            "recorded": True,
            "reference": task.key,
            "note": "Proposed for approval; nothing was written to Taiga.",
        }

    async def _existing_story(self, story_id: int) -> UserStory:
        story = self.known_stories.get(story_id)
        if story is None:
            try:
                story = await self.in_time(self.taiga.get_user_story(story_id))
            except NotFound:
                story = None
            except TaigaError as exc:
                raise t.ToolError(f"Could not read story {story_id}: {exc.message}") from None
        if story is None or story.project != self.project.id:
            raise t.ToolError(
                f"There is no story with id {story_id} in project {self.project.name}."
            )
        self.known_stories[story.id] = story
        target = self.milestone.existing_id if self.milestone is not None else None
        if target is None or story.milestone != target:
            raise t.ToolError(
                f"Story #{story.ref} (id {story.id}) is not in {self.sprint_name}; this plan only "
                "adds tasks to stories in its own sprint. Propose a new story instead."
            )
        return story

    def _record_milestone(self, args: t.CreateMilestoneInput) -> Any:
        current = self.milestone
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
        self.milestone = current.model_copy(
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

    # --- context and result -----------------------------------------------------------------

    def _project_view(self) -> dict[str, Any]:
        p = self.project
        return {
            "id": p.id,
            "slug": p.slug,
            "name": p.name,
            "my_permissions": sorted(p.my_permissions),
            "sprints": [{"id": m.id, "name": m.name, "closed": m.closed} for m in p.milestones],
            "members": [_member_view(m) for m in p.members],
        }

    def _context(self) -> dict[str, Any]:
        m = self.milestone
        assert m is not None
        target: dict[str, Any] = {
            "name": m.name,
            "exists": not m.to_create,
            "id": m.existing_id,
            "estimated_start": m.estimated_start,
            "estimated_finish": m.estimated_finish,
        }
        if m.to_create:
            target["note"] = "Does not exist yet; the plan creates it with these dates."
        return {
            "project": {
                "id": self.project.id,
                "slug": self.project.slug,
                "name": self.project.name,
            },
            "tools_you_may_use": list(self.offered),
            "target_sprint": target,
            "stories_already_in_target_sprint": [_story_view(s) for s in self.sprint_stories],
            "sprints": [
                {k: v for k, v in _milestone_view(x).items() if k != "stories"}
                for x in self.milestones
            ],
            "members": [_member_view(x) for x in self.project.members],
        }

    def finish(self) -> Proposal:
        proposal = Proposal(
            project=ProjectInfo(id=self.project.id, slug=self.project.slug, name=self.project.name),
            target_sprint=self.sprint_name,
            milestone=self.milestone,
            stories=self.stories,
            tasks_for_existing=self.tasks_for_existing,
            warnings=self.warnings,
            stopped=self.stopped,
            usage=self.usage,
        )
        summary = self.model_summary if self.stopped is None else ""
        proposal.summary = summary or proposal.count_summary()
        return proposal


def next_sprint_dates(milestones: list[Milestone], today: date) -> tuple[date, date]:
    """The day after the latest sprint ends (today if that day is past), for that sprint's
    length; with no sprint, today + 14 days."""
    if not milestones:
        return today, today + timedelta(days=DEFAULT_SPRINT_DAYS)
    latest = _latest(milestones)
    length = latest.estimated_finish - latest.estimated_start
    if length.days < 1:
        length = timedelta(days=DEFAULT_SPRINT_DAYS)
    start = max(latest.estimated_finish + timedelta(days=1), today)
    return start, start + length


_NUMBERED = re.compile(r"^\s*(\D*?)\s*(\d+)\s*$")


def named_like_the_others(name: str, milestones: list[Milestone]) -> str:
    """'sprint 7' becomes 'Sprint 7' when the latest sprint is called 'Sprint 6'."""
    asked = _NUMBERED.match(name)
    latest = _NUMBERED.match(_latest(milestones).name) if milestones else None
    if not asked or not latest or asked.group(1).casefold() != latest.group(1).casefold():
        return name.strip()
    return f"{latest.group(1)} {int(asked.group(2))}"


def _latest(milestones: list[Milestone]) -> Milestone:
    return max(milestones, key=lambda m: (m.estimated_finish, m.estimated_start))


# --- helpers ----------------------------------------------------------------------------------


def _result(tool_use_id: str, content: Any, *, error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content if isinstance(content, str) else _json(content),
    }
    if error:
        block["is_error"] = True
    return block


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _assistant_content(response: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in response.content:
        if block.type == "text":
            if block.text:  # the API refuses an empty text block sent back to it
                blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:  # thinking and other blocks go back as received
            blocks.append(block.model_dump(mode="json", exclude_none=True))
    return blocks


def _last_line(response: Any) -> str:
    text = "\n".join(b.text for b in response.content if b.type == "text")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _status(exc: anthropic_sdk.APIError) -> str:
    if isinstance(exc, anthropic_sdk.APIStatusError):
        return str(exc.status_code)
    return type(exc).__name__


def _retryable(exc: anthropic_sdk.APIError) -> bool:
    if isinstance(exc, anthropic_sdk.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, anthropic_sdk.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: anthropic_sdk.APIError) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds), if the response has them."""
    if not isinstance(exc, anthropic_sdk.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None



def _milestone_view(m: Milestone) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "estimated_start": m.estimated_start,
        "estimated_finish": m.estimated_finish,
        "closed": m.closed,
        "stories": [_story_view(s) for s in m.user_stories],
    }


def _story_view(s: UserStory) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": s.id,
        "ref": s.ref,
        "subject": s.subject,
        "sprint_id": s.milestone,
    }
    if s.status_name:
        view["status"] = s.status_name
    if s.is_closed:
        view["closed"] = True
    return view


def _member_view(m: Any) -> dict[str, Any]:
    return {
        "user_id": m.id,
        "username": m.username,
        "name": m.full_name_display,
        "role": m.role_name,
    }
