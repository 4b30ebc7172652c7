"""The tool registry: every tool Claude may call, each declared once.

A tool is a pydantic input model (its JSON schema is what Claude sees, generated — never
written by hand), a description written for the model, a kind (read or write) and the Taiga
permission it needs. Which tools a run offers is decided from the project's `my_permissions`
for the acting user's own token; nothing in the minutes can add a tool. There is no tool that
deletes or administers anything; the only change to an existing object is moving a story into
the target sprint.

All tools act on the run's project only (there is no project argument), and write tools only
record proposed actions; nothing is written until a person approves the plan.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from agent.proposal import DESCRIPTION_MAX, SUBJECT_MAX, TAG_MAX, ActionKind, Proposal

MAX_TASKS_PER_STORY = 20
MAX_TAGS = 10
NAME_MAX = 200

Subject = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SUBJECT_MAX)
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TAG_MAX)]
StoryReference = Annotated[str, StringConstraints(pattern=r"^new-story-[1-9][0-9]*$")]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)
]
DueDate = Annotated[
    date | None,
    Field(
        description=(
            "YYYY-MM-DD, only when the minutes state a deadline for this item (a relative one "
            "counts from today's date in the first message). Omit it otherwise."
        )
    ),
]
Assignee = Annotated[
    int | Name | None,
    Field(
        description=(
            "Who takes this on, only when the minutes say so: a member's user_id from the "
            "context, or the name or @handle exactly as the minutes write it. Omit it when the "
            "minutes name nobody; never guess."
        )
    ),
]


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MilestoneByNameInput(ToolInput):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)
    ] = Field(description="Sprint name, e.g. 'Sprint 6' (matched ignoring case and spaces).")


class ListUserStoriesInput(ToolInput):
    milestone_id: int | None = Field(
        None, description="Only stories in this sprint (milestone id). Omit for all stories."
    )
    backlog: bool = Field(False, description="Only stories not in any sprint (the backlog).")

    @model_validator(mode="after")
    def _one_filter(self) -> ListUserStoriesInput:
        if self.backlog and self.milestone_id is not None:
            raise ValueError("give milestone_id or backlog, not both")
        return self


class CreateMilestoneInput(ToolInput):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)
    ] = Field(description="The target sprint's name (only the run's target sprint may be created).")
    estimated_start: date = Field(description="First day, YYYY-MM-DD.")
    estimated_finish: date = Field(description="Last day, YYYY-MM-DD, after the start.")


class TaskDraft(ToolInput):
    subject: Subject = Field(description="Short imperative task title.")
    description: Description = Field("", description="Optional details.")
    assignee: Assignee = None
    due_date: DueDate = None


class CreateUserStoryInput(ToolInput):
    subject: Subject = Field(description="The story title, e.g. 'As a coach, I can export a plan'.")
    description: Description = Field(
        "", description="What and why, with acceptance criteria from the minutes."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="Optional tags.")
    tasks: list[TaskDraft] = Field(
        default_factory=list,
        max_length=MAX_TASKS_PER_STORY,
        description="The story's tasks (created with it).",
    )
    assignee: Assignee = None
    due_date: DueDate = None


class CreateTaskInput(ToolInput):
    user_story: int | StoryReference = Field(
        description=(
            "The parent story: the numeric id of a story already in the target sprint, or the "
            "reference of a story proposed in this run (e.g. 'new-story-1')."
        )
    )
    subject: Subject = Field(description="Short imperative task title.")
    description: Description = Field("", description="Optional details.")
    assignee: Assignee = None
    due_date: DueDate = None


class MoveUserStoryInput(ToolInput):
    user_story: int = Field(
        description="The numeric id of an open story outside the target sprint (backlog or "
        "another sprint)."
    )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    input_model: type[BaseModel]
    kind: Literal["read", "write"]
    permission: str
    extra_permissions: tuple[str, ...] = ()  # needed only for parts of the input (see description)

    def input_schema(self) -> dict[str, Any]:
        return input_schema_of(self.input_model)

    def to_param(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema(),
        }


_SPECS = (
    ToolSpec(
        name="taiga_get_milestone_by_name",
        description=(
            "Read one sprint by name (ignoring case and spaces): its dates and the stories in "
            "it; null if there is none. Use it when the minutes refer to the work of another "
            "sprint, to continue that work without repeating it. Do not use it for the target "
            "sprint or to list the sprints: the first message already holds both."
        ),
        input_model=MilestoneByNameInput,
        kind="read",
        permission="view_milestones",
    ),
    ToolSpec(
        name="taiga_list_user_stories",
        description=(
            "List the project's existing user stories (id, ref, subject, sprint, status), "
            "optionally only one sprint's or only the backlog. Use it when the minutes name a "
            "story that may already exist outside the target sprint (by #ref or by name), so "
            "you do not propose it again. Do not use it for the target sprint or the open "
            "stories the first message already lists."
        ),
        input_model=ListUserStoriesInput,
        kind="read",
        permission="view_us",
    ),
    ToolSpec(
        name="taiga_create_milestone",
        description=(
            "Propose creating the target sprint, or change the proposed dates of the sprint "
            "already proposed; recorded for approval, nothing is written now. Use it only when "
            "the target sprint does not exist yet and the minutes state other dates than the "
            "ones in the first message. Do not use it for any other sprint or to change an "
            "existing one."
        ),
        input_model=CreateMilestoneInput,
        kind="write",
        permission="add_milestone",
    ),
    ToolSpec(
        name="taiga_create_user_story",
        description=(
            "Propose one user story in the target sprint, with its tasks (tasks need the "
            "add_task permission); it is recorded for a person's approval and returns the "
            "story's reference (e.g. 'new-story-1'). Use it once per piece of work the minutes "
            "decide on, with all of the plan's calls in one turn. Do not use it for work "
            "already in the sprint, or work the minutes mark done, deferred or rejected."
        ),
        input_model=CreateUserStoryInput,
        kind="write",
        permission="add_us",
        extra_permissions=("add_task",),
    ),
    ToolSpec(
        name="taiga_move_user_story",
        description=(
            "Propose moving an existing open story (from the backlog or another sprint) into "
            "the target sprint; recorded for approval, nothing is written now. Use it when the "
            "minutes take a story into this sprint (\"we take #42\"), or when a story you would "
            "propose already exists. Do not use it for a story already in the target sprint or "
            "a closed one. Tasks for a moved story may then be added with taiga_create_task."
        ),
        input_model=MoveUserStoryInput,
        kind="write",
        permission="modify_us",
    ),
    ToolSpec(
        name="taiga_create_task",
        description=(
            "Propose one task under a story already in the target sprint (its numeric id) or "
            "under a story proposed in this run (its reference, e.g. 'new-story-1'). Use it for "
            "new work on a story that exists in the sprint or that you move into it. Do not use "
            "it for the tasks of a "
            "story you propose: put those in taiga_create_user_story. Recorded for approval; "
            "nothing is written now."
        ),
        input_model=CreateTaskInput,
        kind="write",
        permission="add_task",
    ),
)

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in _SPECS}
# The write tool whose permission each kind of proposed action needs when it is applied.
_TOOL_FOR_ACTION: dict[ActionKind, str] = {
    "milestone": "taiga_create_milestone",
    "move": "taiga_move_user_story",
    "story": "taiga_create_user_story",
    "task": "taiga_create_task",
}
ADD_STORY = TOOLS["taiga_create_user_story"].permission
ADD_TASK = TOOLS["taiga_create_task"].permission
ADD_SPRINT = TOOLS["taiga_create_milestone"].permission
# What planning stories with tasks needs: asked of an approver when a plan's actions are unknown.
STORY_AND_TASK_PERMISSIONS = (ADD_STORY, ADD_TASK)


def permissions_to_apply(proposal: Proposal) -> frozenset[str]:
    """The Taiga permissions an approver needs for the proposal's writes."""
    tools = (TOOLS[_TOOL_FOR_ACTION[action.kind]] for action in proposal.actions())
    return frozenset(tool.permission for tool in tools)


class ToolError(Exception):
    """A tool call that goes back to the model as an `is_error` result with this message."""


def offered_tools(permissions: frozenset[str]) -> list[ToolSpec]:
    """The tools whose permission the acting user holds in the project, in registry order."""
    return [spec for spec in _SPECS if spec.permission in permissions]


def anthropic_tool_params(specs: list[ToolSpec], *, cache: bool = True) -> list[dict[str, Any]]:
    """Messages API `tools`, with a prompt-cache breakpoint on the last one."""
    params = [spec.to_param() for spec in specs]
    if cache and params:
        params[-1]["cache_control"] = {"type": "ephemeral"}
    return params


class DeclaredTool(Protocol):
    """What `parse_input` needs of a tool: a Claude tool's `ToolSpec`, or an MCP tool."""

    @property
    def name(self) -> str: ...

    @property
    def input_model(self) -> type[BaseModel]: ...


def parse_input(spec: DeclaredTool, raw: object) -> BaseModel:
    """Validate a tool call's input, or raise `ToolError` naming each problem."""
    try:
        return spec.input_model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in err["loc"]) or "input"
            problems.append(f"{where}: {err['msg']}")
        raise ToolError(f"Invalid input for {spec.name}: " + "; ".join(problems)) from None


def input_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a tool's input model, flat (no `$defs`), as tool callers are given it
    (a copy: callers add to it)."""
    return copy.deepcopy(_flat_schema(model))


@functools.cache
def _flat_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Built once per model: pydantic's schema generation costs milliseconds, on every run."""
    return _inline_refs(model.model_json_schema())


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace `$ref`s into `$defs` by the definitions themselves (flat schemas for the model)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                merged.update({k: v for k, v in node.items() if k != "$ref"})
                return resolve(merged)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
