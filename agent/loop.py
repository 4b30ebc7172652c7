"""The gated Claude planning loop, in propose mode: nothing is written to Taiga here.

`propose()` reads the project with the acting user's own token (its `my_permissions` decide which
tools exist for the run), prefetches what the model will need concurrently, and runs a bounded
tool loop on the Messages API. Read tools run for real (a turn's reads run concurrently); write
tools are validated and recorded into a `Proposal`, answering with placeholder references such
as `new-story-1`. Budgets stop the loop and the reason is reported, never silently.

This module owns the turns; its parts live in `agent.planning`: `context` (prefetch, the target
sprint, the views the model sees), `model_call` (one streamed call and its retries), `streaming`
(a turn assembled from stream events), `cuts` (continuing a cut answer, and saying what it lost),
`reads` (the read tools) and `recorder` (the write tools and the permission gate).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent import tools as t
from agent.budgets import BudgetExceeded, Budgets, BudgetTracker, StopReason
from agent.people import People, SlackPerson
from agent.planning.context import PlanScope, first_context, plan_scope, prefetch
from agent.planning.cuts import CONTINUE_AFTER_CUT, cut_sentence
from agent.planning.model_call import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_STALL_SECONDS,
    ModelCaller,
    count_usage,
)
from agent.planning.reads import TaigaReads, within_deadline
from agent.planning.recorder import Recorder, planning_gate
from agent.planning.streaming import BrokenOff, StreamedTurn, ToolCall
from agent.progress import Progress, Step
from agent.progress import report as report_progress
from agent.prompts import Revision, first_message
from agent.proposal import ProjectInfo, Proposal, Usage
from agent.wording import ended
from taiga.errors import Unavailable
from taiga.models import Project

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from taiga.client import Clock, TaigaSession

log = logging.getLogger(__name__)



async def propose(
    *,
    anthropic: AsyncAnthropic,
    model: str,
    taiga: TaigaSession,
    project_ref: Project | int | str,
    sprint_name: str,
    minutes: str | None,
    budgets: Budgets,
    clock: Clock,
    progress: Progress | None = None,
    today: date | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    revision: Revision | None = None,
    slack_people: Sequence[SlackPerson] = (),
    stall_seconds: float = DEFAULT_STALL_SECONDS,
) -> Proposal:
    """Plan `sprint_name` of a project from meeting minutes; returns the proposal, writes nothing.
    With `revision`, the model re-proposes that plan as the instruction asks (`agent.refine`).
    `slack_people` are the Slack users the minutes mention or quote, to find owners by
    (`agent.people`).

    `project_ref` is an id, a slug, or a `Project` the caller already read with this same
    session (so it is not fetched twice). Raises `TaigaError` if the project cannot be read,
    `PlanningError` if the model API fails for good. Budget stops, cut-off answers and refusals
    are reported in the proposal instead. An answer that is cut (`max_tokens`, the context
    window, a stream that stalls for `stall_seconds` or breaks off) keeps its finished tool calls
    and is continued in another turn.
    """
    tracker = BudgetTracker(budgets, clock)
    model_caller = ModelCaller(
        client=anthropic,
        model=model,
        max_tokens=max_tokens,
        tracker=tracker,
        stall_seconds=stall_seconds,
    )
    await report_progress(progress, Step("read", "Reading the project in Taiga"))
    try:
        project, milestones, stories = await within_deadline(
            tracker, prefetch(taiga, project_ref, sprint_name)
        )
    except BudgetExceeded:
        raise Unavailable(
            f"Taiga did not answer within the planning time limit of "
            f"{budgets.deadline_seconds:g} s."
        ) from None
    scope = plan_scope(project, milestones, stories, sprint_name, today or date.today())
    warnings, can_plan = planning_gate(scope)
    run = PlanningConversation(
        model_caller=model_caller,
        taiga=taiga,
        tracker=tracker,
        scope=scope,
        warnings=warnings,
        progress=progress,
        people=People(project.members, slack_people),
    )
    if can_plan:
        await run.converse(minutes, revision)
    return run.finish()



class PlanningConversation:
    """One propose run's conversation with the model: its turns, tool calls and usage."""

    def __init__(
        self,
        *,
        model_caller: ModelCaller,
        taiga: TaigaSession,
        tracker: BudgetTracker,
        scope: PlanScope,
        warnings: list[str],
        progress: Progress | None,
        people: People,
    ) -> None:
        self.model_caller = model_caller
        self.tracker = tracker
        self.scope = scope
        self.warnings = warnings
        self.progress = progress
        self.offered = {spec.name: spec for spec in t.offered_tools(scope.perms)}
        self.reads = TaigaReads(taiga=taiga, scope=scope)
        self.recorder = Recorder(taiga=taiga, tracker=tracker, scope=scope, people=people)
        self.usage = Usage()
        self.stopped: StopReason | None = None
        self.cut: str | None = None  # what the last, cut answer lost, until a turn completes
        self.refused: str | None = None  # why the model's latest tool call was refused, if it was
        self.model_summary = ""
        self.messages: list[dict[str, Any]] = []

    async def converse(self, minutes: str | None, revision: Revision | None = None) -> None:
        """Step until the model is done or a budget stops it (the reason becomes a warning)."""
        params = t.anthropic_tool_params(list(self.offered.values()))
        first = first_message(
            context=first_context(self.scope, list(self.offered)),
            notes=self.warnings,
            sprint_name=self.scope.sprint_name,
            minutes=minutes,
            today=self.scope.today,
            revision=revision,
        )
        self.messages = [{"role": "user", "content": first}]
        try:
            while not await self._step(params):
                pass
        except BudgetExceeded as stop:
            self.stopped = stop.reason
            self.warnings.append(self.tracker.budgets.describe(stop.reason))
            if self.cut is not None:
                self.warnings.append(self.cut)
            if self.refused is not None:
                self.warnings.append(f"Claude's last tool call was refused: {self.refused}")

    async def _step(self, params: list[dict[str, Any]]) -> bool:
        """One model call and the tool calls it makes; True when the run is finished."""
        self.tracker.begin_step()
        drafting = Step("draft", f"Drafting the plan with Claude (step {self.tracker.steps})")
        await report_progress(self.progress, drafting)
        turn = await self.model_caller.create(self.messages, params)
        count_usage(self.usage, turn)
        self._add_assistant_turn(turn)
        calls = turn.tool_calls()
        if turn.is_cut:
            await self._keep_what_finished(turn, calls)
            return False
        self.cut = None
        reason = turn.stop_reason
        if reason == "pause_turn":  # the API paused a long turn: send it back to continue it
            return False
        if reason == "refusal":
            raise BudgetExceeded(StopReason.REFUSAL)
        if reason == "tool_use" and calls:
            results = await self._run_tools(calls)
            if all(r.get("is_error") is None for r in results) and self._all_writes(calls):
                # Every call was a proposed write and all were recorded: the plan is complete
                # without another model call (the turn's text is its summary).
                self.model_summary = _last_line(turn)
                return True
            self.messages.append({"role": "user", "content": results})
            return False
        self.model_summary = _last_line(turn)  # end_turn, stop_sequence: the model is done
        return True

    async def _keep_what_finished(self, turn: StreamedTurn, calls: list[ToolCall]) -> None:
        """A cut answer: record its finished calls and ask the model to continue from there;
        raise when it cannot be continued (nothing finished, or no time left)."""
        self.cut = cut_sentence(turn, len(calls))
        if not calls:  # no call finished (one longer than the limit): continuing would redo it
            raise BudgetExceeded(StopReason.MAX_TOKENS)
        late = turn.broken_off is BrokenOff.DEADLINE
        results = await self._run_tools(calls, late=late)
        if late:
            raise BudgetExceeded(StopReason.DEADLINE)
        continuation = {"type": "text", "text": CONTINUE_AFTER_CUT}
        self.messages.append({"role": "user", "content": [*results, continuation]})

    def _add_assistant_turn(self, turn: StreamedTurn) -> None:
        """Append the answer; a continued (paused) turn extends the assistant message it
        continues, so roles keep alternating."""
        content = turn.assistant_content()
        last = self.messages[-1]
        if last["role"] == "assistant":
            last["content"] = [*last["content"], *content]
        elif content:
            self.messages.append({"role": "assistant", "content": content})

    def _all_writes(self, calls: list[Any]) -> bool:
        return bool(calls) and all(
            (spec := self.offered.get(c.name)) is not None and spec.kind == "write" for c in calls
        )

    async def _run_tools(
        self, calls: list[ToolCall], *, late: bool = False
    ) -> list[dict[str, Any]]:
        """Writes are recorded in order; the turn's reads then run concurrently. `late`: the
        deadline passed while the model was answering; its finished writes are still recorded,
        its reads are not run."""
        results: list[dict[str, Any] | None] = [None] * len(calls)
        reads: list[tuple[int, t.ToolSpec, BaseModel]] = []
        for i, call in enumerate(calls):
            spec = self.offered.get(call.name)
            write = spec is not None and spec.kind == "write"
            self.tracker.admit_call(call.name, call.input, write=write, late=late)  # may stop
            self.usage.tool_calls = self.tracker.tool_calls
            try:
                if spec is None:
                    raise t.ToolError(self._unavailable(call.name))
                args = t.parse_input(spec, call.input)
                if spec.kind == "read":
                    if not late:
                        reads.append((i, spec, args))
                    continue
                results[i] = _result(call.id, await self.recorder.record(spec.name, args))
                self.refused = None
            except t.ToolError as exc:
                self.refused = ended(str(exc)[:300])
                results[i] = _result(call.id, str(exc), error=True)
        outcomes = await within_deadline(
            self.tracker,
            asyncio.gather(*(self.reads.read(spec.name, args) for _, spec, args in reads)),
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
                f"in project {self.scope.project.name}, which the requesting user does not have. "
                f"Available tools: {offered}."
            )
        return f"There is no tool named {name!r}. Available tools: {offered}."

    def finish(self) -> Proposal:
        project = self.scope.project
        proposal = Proposal(
            project=ProjectInfo(id=project.id, slug=project.slug, name=project.name),
            target_sprint=self.scope.sprint_name,
            milestone=self.scope.milestone,
            stories=self.recorder.stories,
            tasks_for_existing=self.recorder.tasks_for_existing,
            moves=self.recorder.moves,
            left_out=self.recorder.left_out,
            warnings=self.warnings,
            stopped=self.stopped,
            stop_cause=self.tracker.budgets.cause(self.stopped) if self.stopped else "",
            cut=self.cut or "",
            usage=self.usage,
            questions=self.recorder.questions,
        )
        summary = self.model_summary if self.stopped is None else ""
        proposal.summary = summary or proposal.count_summary()
        return proposal


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


def _last_line(turn: StreamedTurn) -> str:
    lines = [line.strip() for line in turn.text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
