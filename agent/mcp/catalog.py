"""The MCP server's tools, each declared once: an input model (its JSON schema is what MCP clients
see, generated), a description, and whether it writes to Taiga.

The read tools are the Claude tools' own (`agent.tools`): the same input model with a `project`
argument added, since an MCP call is not bound to one planning run's project. The plan tools are
the review step Slack's buttons give: `propose_plan` stores a proposal and writes nothing,
`apply_plan` writes exactly that proposal once, `undo_plan` deletes what it created. Someone who
may not write in any of their projects is not offered the writing tools at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from mcp import types
from pydantic import BaseModel, Field, StringConstraints, create_model

from agent.tools import TOOLS, ToolInput, ToolSpec, input_schema_of

ProjectRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    Field(description="The Taiga project: its slug or numeric id."),
]
PlanId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-f]{32}$")]


class ProposePlanInput(ToolInput):
    project: ProjectRef
    sprint: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ] = Field(description="The sprint to plan, e.g. 'Sprint 6' (created if it does not exist).")
    minutes: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="The meeting minutes, as written."
    )


class PlanInput(ToolInput):
    plan_id: PlanId = Field(description="The plan id that propose_plan returned.")


class ApplyPlanInput(PlanInput):
    allow_partial: bool = Field(
        False,
        description="Apply a proposal that a budget stopped early, as it is (default: refuse).",
    )


@dataclass(frozen=True, slots=True)
class McpTool:
    name: str
    description: str
    input_model: type[BaseModel]
    writes: bool = False
    read_tool: ToolSpec | None = None  # the Claude read tool this one serves

    def to_mcp(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            inputSchema=input_schema_of(self.input_model),
            annotations=types.ToolAnnotations(
                readOnlyHint=not self.writes,
                destructiveHint=self.name == "undo_plan",
                idempotentHint=True,
                openWorldHint=True,
            ),
        )


def _first_sentence(text: str) -> str:
    """What the tool does, without the advice written for the planning model."""
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


def _with_project(spec: ToolSpec) -> McpTool:
    model: Any = create_model(  # the Claude tool's input, plus the project it reads
        f"Project{spec.input_model.__name__}", __base__=spec.input_model, project=(ProjectRef, ...)
    )
    return McpTool(spec.name, _first_sentence(spec.description), model, read_tool=spec)


_PLAN_TOOLS = (
    McpTool(
        "propose_plan",
        "Turn meeting minutes into a proposed sprint plan (user stories with tasks, stories "
        "moved in from the backlog, owners and due dates the minutes give), checked against the "
        "project as it is. Nothing is written to Taiga: show the proposal to the person, then "
        "apply_plan with the returned plan_id writes exactly this plan.",
        ProposePlanInput,
    ),
    McpTool(
        "show_plan",
        "Show a plan by id: its state, the proposal, and once applied what was created "
        "(with links) or what is still missing.",
        PlanInput,
    ),
    McpTool(
        "apply_plan",
        "Write a proposed plan to Taiga, exactly once: applying it again creates nothing more "
        "and returns the same result; after a partial failure it creates only what is "
        "missing. Ask the person before calling it.",
        ApplyPlanInput,
        writes=True,
    ),
    McpTool(
        "undo_plan",
        "Delete what an applied plan created in Taiga and move back the stories it moved "
        "(within the undo window), keeping what people changed since.",
        PlanInput,
        writes=True,
    ),
)

MCP_TOOLS: dict[str, McpTool] = {
    tool.name: tool
    for tool in (
        *(_with_project(spec) for spec in TOOLS.values() if spec.kind == "read"),
        *_PLAN_TOOLS,
    )
}
