"""The MCP server (`python -m agent mcp`), driven by the `mcp` SDK's client over stdio and
streamable HTTP, against the fake Taiga and fake Anthropic."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp import types
from mcp.client.session import ClientSession
from mcp.shared.context import RequestContext
from pydantic import AnyUrl

from agent.tools import TOOLS
from tests.peers.cli_env import plan_turn
from tests.peers.fake_anthropic import FakeAnthropic, message, tool_use
from tests.peers.fake_taiga import PASSWORDS, PROJECT_ID, PROJECT_SLUG, FakeTaiga
from tests.peers.mcp_clients import http_session, stdio_session, structured

pytestmark = pytest.mark.anyio

MINUTES = "Coaches export plans as PDF; athletes get reminders."
PROPOSE = {"project": PROJECT_SLUG, "sprint": "Sprint 6", "minutes": MINUTES}
PLAN_TOOLS = {"propose_plan", "show_plan", "apply_plan", "undo_plan"}


def _story_subjects(fake_taiga: FakeTaiga) -> list[str]:
    return sorted(s["subject"] for s in fake_taiga.stories(PROJECT_ID))


async def test_a_member_who_may_plan_gets_every_tool_a_viewer_none_that_writes(
    mcp_env: dict[str, str]
) -> None:
    async with stdio_session(mcp_env) as alice:
        offered = {tool.name: tool for tool in (await alice.list_tools()).tools}
    as_bob = {**mcp_env, "TAIGA_USERNAME": "bob", "TAIGA_PASSWORD": PASSWORDS["bob"]}
    async with stdio_session(as_bob) as bob:
        offered_to_bob = {tool.name for tool in (await bob.list_tools()).tools}

    reads = {name for name, spec in TOOLS.items() if spec.kind == "read"}
    assert set(offered) == reads | PLAN_TOOLS
    assert offered_to_bob == reads | {"propose_plan", "show_plan"}
    # The read tools' schemas are the Claude tools' own, plus the project they read.
    listing = offered["taiga_list_user_stories"].inputSchema
    claude = TOOLS["taiga_list_user_stories"].input_schema()
    project = listing["properties"]["project"]
    assert listing["properties"] == {**claude["properties"], "project": project}
    assert listing["required"] == ["project"]


async def test_propose_writes_nothing_and_apply_writes_the_plan_once(
    mcp_env: dict[str, str], fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga
) -> None:
    fake_anthropic.script(plan_turn("Sprint 6"))
    before = _story_subjects(fake_taiga)
    async with stdio_session(mcp_env) as session:
        proposal = structured(await session.call_tool("propose_plan", PROPOSE))
        assert [s["subject"] for s in proposal["stories"]] == [
            "As a coach, I can export a plan as PDF",
            "As an athlete, I get reminders",
        ]
        assert proposal["complete"] is True
        assert fake_taiga.requests_to("POST", "/userstories*") == []

        plan = {"plan_id": proposal["plan_id"]}
        applied = structured(await session.call_tool("apply_plan", plan))
        again = structured(await session.call_tool("apply_plan", plan))
        shown = structured(await session.call_tool("show_plan", plan))

    assert applied["complete"] is True and applied["state"] == "done"
    assert {i["subject"] for i in applied["created"] if i["kind"] == "story"} == {
        "As a coach, I can export a plan as PDF",
        "As an athlete, I get reminders",
    }
    assert again["created"] == applied["created"]  # the same result, nothing created twice
    assert len(fake_taiga.requests_to("POST", "/userstories")) == 2
    assert len(fake_taiga.requests_to("POST", "/tasks")) == 3
    assert _story_subjects(fake_taiga) == sorted(
        [*before, "As a coach, I can export a plan as PDF", "As an athlete, I get reminders"]
    )
    assert shown["state"] == "done" and shown["result"]["complete"] is True


async def test_apply_asks_the_person_first_and_a_no_writes_nothing(
    mcp_env: dict[str, str], fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga
) -> None:
    fake_anthropic.script(plan_turn("Sprint 6"))
    questions: list[str] = []

    async def decline(
        context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        questions.append(params.message)
        return types.ElicitResult(action="decline")

    async with stdio_session(mcp_env, elicitation=decline) as session:
        proposal = structured(await session.call_tool("propose_plan", PROPOSE))
        answer = structured(await session.call_tool("apply_plan", {"plan_id": proposal["plan_id"]}))

    assert questions == [
        "Write this plan to Taiga project Peer Client Test, sprint Sprint 6: "
        "2 user stories and 3 tasks?"
    ]
    assert answer["applied"] is False
    assert "Nothing was written" in answer["message"]
    assert fake_taiga.requests_to("POST", "/userstories*") == []
    assert fake_taiga.requests_to("POST", "/tasks*") == []


async def test_a_plan_a_budget_stopped_is_applied_only_when_asked_to(
    mcp_env: dict[str, str], fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga
) -> None:
    story = {"subject": "As a coach, I can export a plan as PDF"}
    fake_anthropic.script(
        message(
            tool_use("taiga_create_user_story", story),
            tool_use("taiga_list_user_stories", {"backlog": True}),
        )
    )
    async with stdio_session({**mcp_env, "AGENT_MAX_STEPS": "1"}) as session:
        proposal = structured(await session.call_tool("propose_plan", PROPOSE))
        refused = await session.call_tool("apply_plan", {"plan_id": proposal["plan_id"]})
        assert fake_taiga.requests_to("POST", "/userstories*") == []
        applied = structured(
            await session.call_tool(
                "apply_plan", {"plan_id": proposal["plan_id"], "allow_partial": True}
            )
        )

    assert proposal["complete"] is False and proposal["stopped"] == "steps"
    assert refused.isError
    assert refused.content[0].text.startswith("Planning stopped early (")
    assert "nothing was written to Taiga" in refused.content[0].text
    assert [i["subject"] for i in applied["created"] if i["kind"] == "story"] == [story["subject"]]


async def test_bad_input_and_unknown_plans_are_tool_errors_in_words(
    mcp_env: dict[str, str], fake_taiga: FakeTaiga
) -> None:
    async with stdio_session(mcp_env) as session:
        no_minutes = await session.call_tool(
            "propose_plan", {"project": PROJECT_SLUG, "sprint": "S"}
        )
        not_an_id = await session.call_tool("apply_plan", {"plan_id": "../etc/passwd"})
        unknown = await session.call_tool("show_plan", {"plan_id": "0" * 32})
        no_project = await session.call_tool(
            "taiga_list_user_stories", {"project": "no-such-project"}
        )

    assert no_minutes.isError
    assert no_minutes.content[0].text == "Invalid input for propose_plan: minutes: Field required"
    assert not_an_id.isError and "plan_id" in not_an_id.content[0].text
    assert unknown.isError
    assert unknown.content[0].text.startswith(f"There is no plan {'0' * 32} here")
    assert no_project.isError and "no-such-project" in no_project.content[0].text
    assert fake_taiga.requests_to("POST", "/userstories*") == []


async def test_a_wrong_password_is_said_at_the_first_call_and_nothing_is_offered_that_writes(
    mcp_env: dict[str, str]
) -> None:
    async with stdio_session({**mcp_env, "TAIGA_PASSWORD": "wrong"}) as session:
        offered = {tool.name for tool in (await session.list_tools()).tools}
        answer = await session.call_tool("propose_plan", PROPOSE)

    assert "apply_plan" not in offered and "propose_plan" in offered
    assert answer.isError
    assert answer.content[0].text == "Taiga did not accept that username and password."


async def test_reads_and_resources_show_what_taiga_shows_the_caller(
    mcp_env: dict[str, str], fake_taiga: FakeTaiga
) -> None:
    async with stdio_session(mcp_env) as session:
        backlog = structured(
            await session.call_tool(
                "taiga_list_user_stories", {"project": PROJECT_SLUG, "backlog": True}
            )
        )
        listed = {str(r.uri) for r in (await session.list_resources()).resources}
        projects = _text(await session.read_resource(AnyUrl("taiga://projects")))
        sprints = _text(
            await session.read_resource(AnyUrl(f"taiga://projects/{PROJECT_SLUG}/sprints"))
        )

    expected_backlog = {s["id"] for s in fake_taiga.stories(PROJECT_ID) if s["milestone"] is None}
    assert {s["id"] for s in backlog["result"]} == expected_backlog
    assert {"taiga://projects", f"taiga://projects/{PROJECT_SLUG}/sprints"} <= listed
    assert [(p["slug"], p["may_plan"]) for p in projects] == [(PROJECT_SLUG, True)]
    assert {m["name"] for m in sprints} == {m["name"] for m in fake_taiga.milestones(PROJECT_ID)}


def _text(result: types.ReadResourceResult) -> Any:
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    return json.loads(content.text)


async def test_over_http_each_caller_acts_with_its_own_token_and_a_refresh_is_kept(
    mcp_http: str, fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga
) -> None:
    alice = fake_taiga.login_tokens("alice")
    fake_anthropic.script(plan_turn("Sprint 6"))
    async with http_session(mcp_http, alice["auth_token"], refresh=alice["refresh"]) as session:
        proposal = structured(await session.call_tool("propose_plan", PROPOSE))
    fake_taiga.expire_access_tokens("alice")
    # Each call is a new connection presenting the same (now expired) access token.
    for _ in range(2):
        async with http_session(mcp_http, alice["auth_token"], refresh=alice["refresh"]) as session:
            result = structured(
                await session.call_tool("apply_plan", {"plan_id": proposal["plan_id"]})
            )
            assert result["complete"] is True

    assert len(fake_taiga.requests_to("POST", "/auth/refresh")) == 1  # refreshed once, kept
    assert len(fake_taiga.requests_to("POST", "/userstories")) == 2
    bob = fake_taiga.login_tokens("bob")
    async with http_session(mcp_http, bob["auth_token"]) as session:
        offered = {tool.name for tool in (await session.list_tools()).tools}
    assert "apply_plan" not in offered


async def test_over_http_a_request_without_a_token_is_refused_in_words(mcp_http: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(mcp_http, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    assert response.json()["error_description"].startswith(
        "Send your Taiga access token as 'Authorization: Bearer <token>'"
    )
