"""The MCP server itself (the `mcp` SDK's low-level `Server`), the same over stdio and HTTP.

Tools are listed per caller (no writing tools for someone who may not write in any of their
projects), their input is checked by the same pydantic models that declare them, and every
failure comes back as a tool error holding one plain sentence. The caller's projects and each
project's sprints are resources.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server
from pydantic import AnyUrl
from pydantic_core import to_jsonable_python
from starlette.requests import Request

from agent.errors import PlanIncomplete, PlanNotAllowed, explain_failure
from agent.executor import PlanNotApproved, PlanNotFound
from agent.identity import RequestTokens
from agent.mcp.catalog import MCP_TOOLS, McpTool
from agent.mcp.identity import Identity, NoTaigaIdentity
from agent.mcp.planner import McpPlanner
from agent.mcp.plans import UnknownPlan
from agent.mcp.resources import list_resources, read_resource, resource_templates
from agent.tools import ToolError, parse_input
from agent.undo import UndoRefused
from taiga.errors import TaigaError

log = logging.getLogger(__name__)

SERVER_NAME = "taiga-planner"
INSTRUCTIONS = (
    "Plan a Taiga sprint from meeting minutes: propose_plan shows a plan and writes nothing; "
    "apply_plan writes exactly that plan once, after the person agreed."
)
_CONFIRM_SCHEMA: types.ElicitRequestedSchema = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "title": "Write it to Taiga"}},
    "required": ["confirm"],
}
_SAID_IN_WORDS = (
    ToolError, NoTaigaIdentity, UnknownPlan, PlanNotFound, PlanNotApproved, UndoRefused
)


def build_server(planner: McpPlanner, identity: Identity) -> Server[Any, Any]:
    server: Server[Any, Any] = Server(SERVER_NAME, instructions=INSTRUCTIONS)

    async def caller() -> RequestTokens:
        request = server.request_context.request
        return await identity.tokens(request if isinstance(request, Request) else None)

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        try:
            may_write = await planner.may_write(await caller())
        except (TaigaError, NoTaigaIdentity) as error:  # each call will say why, in words
            log.warning("MCP: offering only the reading tools: %s", type(error).__name__)
            may_write = False
        return [tool.to_mcp() for tool in MCP_TOOLS.values() if may_write or not tool.writes]

    @server.call_tool(validate_input=False)
    async def call_tool(name: str, arguments: dict[str, Any]) -> Any:
        tool = MCP_TOOLS.get(name)
        if tool is None:
            return _failed(f"There is no tool named {name}.")
        try:
            return await _run(tool, arguments)
        except _SAID_IN_WORDS as error:
            return _failed(str(error))
        except (TaigaError, PlanNotAllowed, PlanIncomplete) as error:
            return _failed(explain_failure(error).api_detail)
        except Exception as error:
            log.exception("MCP tool %s failed", name)
            return _failed(explain_failure(error).sentence)

    async def _run(tool: McpTool, arguments: dict[str, Any]) -> dict[str, Any]:
        args: Any = parse_input(tool, arguments)
        tokens = await caller()
        if tool.read_tool is not None:
            return _structured(await planner.read(tool, args, tokens))
        if tool.name == "propose_plan":
            return await planner.propose(args, tokens)
        if tool.name == "show_plan":
            return await planner.show(args, tokens)
        if tool.name == "apply_plan":
            return await planner.apply(args, tokens, confirm)
        return await planner.undo(args, tokens)

    async def confirm(question: str) -> bool:
        """Ask the person, where the client can ask; a client that cannot has its own review."""
        context = server.request_context
        asking = types.ClientCapabilities(elicitation=types.ElicitationCapability())
        if not context.session.check_client_capability(asking):
            return True
        answer = await context.session.elicit_form(
            question, _CONFIRM_SCHEMA, related_request_id=context.request_id
        )
        return answer.action == "accept" and bool((answer.content or {}).get("confirm"))

    @server.list_resources()
    async def resources() -> list[types.Resource]:
        return await list_resources(await caller())

    @server.list_resource_templates()
    async def templates() -> list[types.ResourceTemplate]:
        return resource_templates()

    @server.read_resource()
    async def read(uri: AnyUrl) -> str:
        return json.dumps(_jsonable(await read_resource(str(uri), await caller())))

    return server


def _structured(answer: Any) -> dict[str, Any]:
    """Tool results are JSON objects; a read that answers a list or null is wrapped."""
    return _jsonable(answer if isinstance(answer, dict) else {"result": answer})


def _jsonable(value: Any) -> Any:
    """Dates (sprints, due dates) as ISO strings."""
    return to_jsonable_python(value)


def _failed(sentence: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=sentence)], isError=True
    )
