"""`POST /agent/run` and `GET /health` end to end: the real app (ASGI) against the fake Anthropic,
the fake Taiga and a temp-file SQLite database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from agent.runtime import Runtime, build_runtime
from agent.settings import Settings
from bot.api.target import sprint_from_prompt
from bot.server import create_api
from storage import repositories as repo
from storage.db import Database
from storage.models import Plan
from storage.plan_states import Transition
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import (
    OTHER_PROJECT_ID,
    PROJECT_ID,
    PROJECT_SLUG,
    SPRINT6_ID,
    FakeTaiga,
)

KEY = "test-api-key-1"
WEB = "https://taiga.example"
MINUTES = (
    "Weekly sync. Sprint 5 went well.\n"
    "Decided: coaches export training plans as PDF (button + renderer).\n\n"
    "Create user stories and tasks for Sprint 6."
)
PLAN_TURN = message(
    text("1 story with 2 tasks for Sprint 6."),
    tool_use(
        "taiga_create_user_story",
        {
            "subject": "As a coach, I can export a plan as PDF",
            "description": "From the weekly sync.",
            "tasks": [{"subject": "Add export button"}, {"subject": "Render PDF"}],
        },
    ),
)


class JumpingClock(FakeClock):
    """Every reading is a minute later than the one before: any deadline passes at once."""

    def now(self) -> float:
        self.time += 60.0
        return self.time


@pytest.fixture
def make_settings(
    sqlite_database: Database, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "taiga_api_url": fake_taiga.api_url,
            "taiga_web_url": WEB,
            "anthropic_api_key": "test",
            "anthropic_base_url": fake_anthropic.base_url,
            "anthropic_model": "claude-test",
            "database_url": sqlite_database.url.render_as_string(hide_password=False),
            "agent_api_keys": [KEY],
            "token_encryption_keys": [],
            "slack_app_token": "",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


class Api:
    def __init__(self, runtime: Runtime, http: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.http = http

    async def run(
        self, body: dict[str, Any], *, key: str | None = KEY, idempotency_key: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return await self.http.post("/agent/run", json=body, headers=headers)

    async def ok(self, body: dict[str, Any], **options: Any) -> dict[str, Any]:
        """The JSON of a run that must answer 200."""
        response = await self.run(body, **options)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@pytest.fixture
async def open_api(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[tuple[Runtime, httpx.AsyncClient]] = []

    async def open_(
        *, clock: Any = None, request_timeout: float | None = None, **overrides: Any
    ) -> Api:
        runtime = build_runtime(make_settings(**overrides), clock=clock or FakeClock())
        app = create_api(runtime=runtime, request_timeout=request_timeout)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        opened.append((runtime, http))
        return Api(runtime, http)

    try:
        yield open_
    finally:
        for runtime, http in opened:
            await http.aclose()
            await runtime.aclose()


@pytest.fixture
async def api(open_api: Callable[..., Any]) -> Api:
    return await open_api()


def body_for(fake_taiga: FakeTaiga, username: str = "alice", **extra: Any) -> dict[str, Any]:
    tokens = fake_taiga.login_tokens(username)
    return {"project_id": PROJECT_ID, "prompt": MINUTES, "auth_token": tokens["auth_token"]} | extra


async def plans(db: Database) -> list[Plan]:
    return await db.run(lambda s: list(s.exec(select(Plan)).all()))


# --------------------------------------------------------------------------- the default app


@pytest.mark.anyio
async def test_without_slack_settings_the_default_app_serves_only_the_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, sqlite_database: Database
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", sqlite_database.url.render_as_string(hide_password=False))
    monkeypatch.setenv("TAIGA_API_URL", "http://127.0.0.1:9/api/v1")  # nothing listens there
    monkeypatch.setenv("AGENT_API_KEYS", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    for name in ("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    app = create_api()
    transport = httpx.ASGITransport(app=app)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        health = await http.get("/health")
        slack_events = await http.post("/slack/events", content=b"{}")
        unauthorized = await http.post("/agent/run", json={})

    assert health.status_code == 200
    assert health.json()["slack"] == "off"
    assert slack_events.status_code == 404
    assert unauthorized.status_code == 401
    assert app.state.planner.runtime is None  # closed at shutdown


# --------------------------------------------------------------------------- access


@pytest.mark.anyio
async def test_agent_run_is_off_without_api_keys(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga
) -> None:
    api = await open_api(agent_api_keys=[])

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 404
    assert fake_taiga.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("key", [None, "wrong-key", ""])
async def test_agent_run_needs_the_bearer_key(
    api: Api, fake_taiga: FakeTaiga, key: str | None
) -> None:
    response = await api.run(body_for(fake_taiga), key=key)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)
    assert fake_taiga.requests == []


@pytest.mark.anyio
async def test_any_configured_key_is_accepted(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    api = await open_api(agent_api_keys=["old-key", KEY])
    fake_anthropic.script(PLAN_TURN)

    await api.ok(body_for(fake_taiga, dry_run=True), key="old-key")


# --------------------------------------------------------------------------- the run


@pytest.mark.anyio
async def test_the_owner_gets_the_plan_created_in_taiga(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)

    data = await api.ok(body_for(fake_taiga))

    story = next(
        s
        for s in fake_taiga.stories(PROJECT_ID)
        if s["subject"] == "As a coach, I can export a plan as PDF"
    )
    tasks = {
        t["subject"]: t for t in fake_taiga.tasks(PROJECT_ID) if t["user_story"] == story["id"]
    }
    assert story["milestone"] == SPRINT6_ID
    assert data["artifacts"]["milestone_id"] == SPRINT6_ID
    [us] = data["artifacts"]["user_stories"]
    assert us["id"] == story["id"] and us["ref"] == story["ref"]
    assert us["url"] == f"{WEB}/project/{PROJECT_SLUG}/us/{story['ref']}"
    assert [(t["id"], t["subject"]) for t in us["tasks"]] == [
        (tasks["Add export button"]["id"], "Add export button"),
        (tasks["Render PDF"]["id"], "Render PDF"),
    ]
    assert all(t["milestone"] == SPRINT6_ID for t in tasks.values())
    assert data["summary"] == "Created 1 user story and 2 tasks in Sprint 6."
    assert data["warnings"] == [] and data["tokens"] is None and data["complete"] is True
    assert data["usage"]["model_calls"] == 1
    # The sprint came from the prompt's instruction, not from "Sprint 5" in the minutes.
    assert "Sprint 6" in fake_anthropic.requests[0].raw
    # A plan row without Slack ids went through approved -> executing -> done.
    [plan] = await plans(api.runtime.db)
    assert plan.id == data["plan_id"] and plan.state == "done"
    assert plan.slack_channel_id == "" and plan.decided_by == "http-api"
    ledger = await api.runtime.db.run(lambda s: repo.ledger_for_plan(s, plan.id))
    assert len(ledger) == 3 and all(e.done for e in ledger.values())


@pytest.mark.anyio
async def test_milestone_id_names_the_sprint(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)
    body = body_for(fake_taiga, milestone_id=SPRINT6_ID, prompt="Export as PDF was decided.")

    data = await api.ok(body | {"dry_run": True})

    assert data["artifacts"]["milestone_id"] == SPRINT6_ID


@pytest.mark.anyio
async def test_a_viewer_claiming_product_owner_is_offered_no_write_tools_and_writes_nothing(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN, PLAN_TURN)
    context = {"id": 7, "username": "bob", "roles": ["Product Owner"]}

    data = await api.ok(body_for(fake_taiga, "bob", user_context=context))

    assert fake_taiga.requests_to("POST", "*") == []
    for request in fake_anthropic.requests:
        assert not [name for name in request.tool_names if "create" in name]
    assert data["artifacts"]["user_stories"] == []
    assert any("roles was ignored" in w for w in data["warnings"])
    assert any("nothing" in w.lower() for w in data["warnings"])
    assert await plans(api.runtime.db) == []


@pytest.mark.anyio
async def test_dry_run_only_proposes(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)

    data = await api.ok(body_for(fake_taiga, dry_run=True))

    [us] = data["artifacts"]["user_stories"]
    assert us["id"] is None and [t["id"] for t in us["tasks"]] == [None, None]
    assert data["dry_run"] is True
    assert fake_taiga.requests_to("POST", "*") == []
    assert await plans(api.runtime.db) == []


@pytest.mark.anyio
async def test_the_project_is_read_once_per_run(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)

    await api.ok(body_for(fake_taiga, dry_run=True))

    assert len(fake_taiga.requests_to("GET", "/projects/*")) == 1


@pytest.mark.anyio
async def test_an_expired_token_is_refreshed_and_the_new_pair_returned(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    tokens = fake_taiga.login_tokens("alice")
    fake_taiga.expire_access_tokens("alice")
    fake_anthropic.script(PLAN_TURN)
    body = {"project_id": PROJECT_ID, "prompt": MINUTES} | tokens

    new = (await api.ok(body))["tokens"]

    assert new["auth_token"] != tokens["auth_token"] and new["refresh"] != tokens["refresh"]
    assert len(fake_taiga.requests_to("POST", "/auth/refresh")) == 1
    latest = fake_taiga.requests_to("POST", "/tasks")[-1]
    assert latest.bearer == new["auth_token"]


@pytest.mark.anyio
async def test_a_request_failing_after_a_refresh_still_hands_back_the_new_pair(
    api: Api, fake_taiga: FakeTaiga
) -> None:
    tokens = fake_taiga.login_tokens("alice")
    fake_taiga.expire_access_tokens("alice")
    body = {"project_id": PROJECT_ID, "prompt": MINUTES} | tokens  # no model turn: 502

    response = await api.run(body)

    assert response.status_code == 502
    new = response.json()["tokens"]
    assert new["refresh"] != tokens["refresh"]
    assert set(response.json()) == {"detail", "tokens"}


@pytest.mark.anyio
async def test_a_partial_apply_is_reported_with_what_is_missing(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)
    fake_taiga.fail_next(500, method="POST", path="/tasks")

    data = await api.ok(body_for(fake_taiga))

    assert data["complete"] is False
    assert [t["id"] is None for t in data["artifacts"]["user_stories"][0]["tasks"]].count(True) == 1
    assert any(w.startswith("Not created: task") for w in data["warnings"])
    assert "1 item was not created" in data["summary"]


# --------------------------------------------------------------------------- Idempotency-Key

PDF_STORY = "As a coach, I can export a plan as PDF"


def pdf_objects(fake_taiga: FakeTaiga) -> tuple[list[int], list[str]]:
    """Ids of the PDF stories in Taiga and the subjects of their tasks."""
    stories = [s["id"] for s in fake_taiga.stories(PROJECT_ID) if s["subject"] == PDF_STORY]
    tasks = [t["subject"] for t in fake_taiga.tasks(PROJECT_ID) if t["user_story"] in stories]
    return stories, sorted(tasks)


@pytest.mark.anyio
async def test_a_retry_with_the_idempotency_key_after_a_partial_apply_creates_only_what_is_missing(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)  # one model turn only: planning again would be a 502
    fake_taiga.fail_next(500, method="POST", path="/tasks")
    first = await api.run(body_for(fake_taiga), idempotency_key="run-1")
    assert first.json()["complete"] is False
    assert len(pdf_objects(fake_taiga)[1]) == 1  # the tasks are sent at once; one of them failed

    retry = await api.run(body_for(fake_taiga), idempotency_key="run-1")  # a fresh token

    assert retry.status_code == 200, retry.text
    data = retry.json()
    assert data["complete"] is True and data["plan_id"] == first.json()["plan_id"]
    stories, tasks = pdf_objects(fake_taiga)
    assert len(stories) == 1 and tasks == ["Add export button", "Render PDF"]
    [us] = data["artifacts"]["user_stories"]
    assert us["id"] == stories[0] and all(t["id"] is not None for t in us["tasks"])
    assert len(fake_anthropic.requests) == 1
    assert len(await plans(api.runtime.db)) == 1


@pytest.mark.anyio
async def test_a_retry_with_the_idempotency_key_after_success_answers_from_the_stored_plan(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN, PLAN_TURN)
    first = await api.run(body_for(fake_taiga), idempotency_key="run-1")
    assert first.status_code == 200, first.text
    fake_taiga.clear_requests()

    retry = await api.run(body_for(fake_taiga), idempotency_key="run-1")

    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert fake_taiga.requests == []  # not even a read
    assert len(fake_anthropic.requests) == 1
    assert len(pdf_objects(fake_taiga)[0]) == 1


@pytest.mark.anyio
async def test_an_idempotency_key_reused_for_another_request_is_422(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN, PLAN_TURN)
    await api.run(body_for(fake_taiga), idempotency_key="run-1")
    fake_taiga.clear_requests()

    other = await api.run(
        body_for(fake_taiga, prompt=MINUTES + " Also CSV."), idempotency_key="run-1"
    )

    assert other.status_code == 422
    assert "already used for another request" in other.json()["detail"]
    assert fake_taiga.requests == [] and len(fake_anthropic.requests) == 1


@pytest.mark.anyio
async def test_an_idempotency_key_whose_plan_is_being_applied_elsewhere_is_409(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(PLAN_TURN)
    fake_taiga.fail_next(500, method="POST", path="/tasks")
    first = await api.run(body_for(fake_taiga), idempotency_key="run-1")
    plan_id = first.json()["plan_id"]
    await api.runtime.db.run(  # another replica has just started applying it
        lambda s: repo.transition_plan(
            s, plan_id=plan_id, transition=Transition.START_APPLY, holder="another-replica",
            lease_until=datetime.now(UTC) + timedelta(seconds=30),
        )
    )
    fake_taiga.clear_requests()

    retry = await api.run(body_for(fake_taiga), idempotency_key="run-1")

    assert retry.status_code == 409
    assert "still being applied" in retry.json()["detail"]
    assert fake_taiga.requests_to("POST", "*") == []


@pytest.mark.anyio
async def test_idempotency_keys_are_scoped_by_the_api_key(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    api = await open_api(agent_api_keys=[KEY, "other-key"])
    csv_turn = message(tool_use("taiga_create_user_story", {"subject": "Export as CSV"}))
    fake_anthropic.script(PLAN_TURN, csv_turn)

    first = await api.run(body_for(fake_taiga), idempotency_key="run-1")
    second = await api.run(body_for(fake_taiga), key="other-key", idempotency_key="run-1")

    assert second.status_code == 200, second.text
    assert first.json()["plan_id"] != second.json()["plan_id"]
    assert len(fake_anthropic.requests) == 2
    assert any(s["subject"] == "Export as CSV" for s in fake_taiga.stories(PROJECT_ID))
    stored = {p.idempotency_key for p in await plans(api.runtime.db)}
    assert len(stored) == 2 and "run-1" not in stored  # stored hashed


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["", "x" * 256, "two words"])
async def test_a_malformed_idempotency_key_is_422(
    api: Api, fake_taiga: FakeTaiga, key: str
) -> None:
    response = await api.run(body_for(fake_taiga), idempotency_key=key)

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    assert fake_taiga.requests == []


@pytest.mark.anyio
async def test_the_openapi_document_describes_the_idempotency_key_header(
    open_api: Callable[..., Any],
) -> None:
    api = await open_api(api_docs=True)
    operation = (await api.http.get("/openapi.json")).json()["paths"]["/agent/run"]["post"]

    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    assert "409" in operation["responses"]


@pytest.mark.anyio
async def test_the_api_documents_are_off_unless_api_docs_is_set(api: Api) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await api.http.get(path)).status_code == 404


# --------------------------------------------------------------------------- status codes


@pytest.mark.anyio
@pytest.mark.parametrize(
    "change",
    [
        {"prompt": None},
        {"project_id": "one"},
        {"project_id": -1},
        {"prompt": "   "},
        {"auth_token": None},
        {"dry_run": "maybe"},
    ],
)
async def test_an_invalid_body_is_422_in_a_plain_sentence(
    api: Api, fake_taiga: FakeTaiga, change: dict[str, Any]
) -> None:
    body = {k: v for k, v in (body_for(fake_taiga) | change).items() if v is not None}

    response = await api.run(body)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("Invalid request: ")
    assert str(body.get("auth_token")) not in detail
    assert fake_taiga.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_422(api: Api, raw: bytes) -> None:
    response = await api.http.post(
        "/agent/run", content=raw, headers={"Authorization": f"Bearer {KEY}"}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


@pytest.mark.anyio
async def test_a_prompt_over_the_limit_is_413(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga
) -> None:
    api = await open_api(max_minutes_chars=50)

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 413
    assert "50" in response.json()["detail"]
    assert fake_taiga.requests == []


@pytest.mark.anyio
async def test_no_sprint_in_the_request_is_422_explaining_how_to_name_one(
    api: Api, fake_taiga: FakeTaiga
) -> None:
    response = await api.run(body_for(fake_taiga, prompt="We talked about PDFs."))

    assert response.status_code == 422
    assert "milestone_id" in response.json()["detail"]


@pytest.mark.anyio
async def test_an_unknown_milestone_id_is_422(api: Api, fake_taiga: FakeTaiga) -> None:
    response = await api.run(body_for(fake_taiga, milestone_id=999))

    assert response.status_code == 422


@pytest.mark.anyio
async def test_a_user_story_id_of_the_sprint_is_named_to_the_model(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    story = next(s for s in fake_taiga.stories(PROJECT_ID) if s["subject"] == "Export report")
    fake_anthropic.script(PLAN_TURN)

    await api.ok(body_for(fake_taiga, user_story_id=story["id"]))

    first = fake_anthropic.bodies[0]["messages"][0]["content"]
    assert f'"Export report" (id {story["id"]})' in first


@pytest.mark.anyio
async def test_a_user_story_id_of_another_sprint_is_422_and_calls_no_model(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    story = next(s for s in fake_taiga.stories(PROJECT_ID) if s["milestone"] != SPRINT6_ID)

    response = await api.run(body_for(fake_taiga, user_story_id=story["id"]))

    assert response.status_code == 422
    assert "is not in Sprint 6" in response.json()["detail"]
    assert fake_anthropic.requests == []


@pytest.mark.anyio
async def test_a_project_taiga_does_not_know_is_404(api: Api, fake_taiga: FakeTaiga) -> None:
    response = await api.run(body_for(fake_taiga, project_id=987654))

    assert response.status_code == 404
    assert response.json()["detail"].startswith("Taiga: ")


@pytest.mark.anyio
async def test_agent_run_is_503_in_a_plain_sentence_when_the_database_is_unreachable(
    open_api: Callable[..., Any],
    tmp_path: Any,
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
) -> None:
    api = await open_api(database_url=f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    fake_anthropic.script(PLAN_TURN)

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 503
    assert response.json() == {
        "detail": "The planner's database is unavailable; try again shortly."
    }
    assert fake_taiga.requests_to("POST", "*") == []


@pytest.mark.anyio
async def test_a_token_taiga_refuses_is_401_with_taigas_reason(
    api: Api, fake_taiga: FakeTaiga
) -> None:
    response = await api.run(body_for(fake_taiga) | {"auth_token": "not-a-token"})

    assert response.status_code == 401
    assert response.json()["detail"].startswith("Taiga did not accept the token")


@pytest.mark.anyio
async def test_an_expired_token_without_a_refresh_token_is_401(
    api: Api, fake_taiga: FakeTaiga
) -> None:
    body = body_for(fake_taiga)
    fake_taiga.expire_access_tokens("alice")

    response = await api.run(body)

    assert response.status_code == 401


@pytest.mark.anyio
async def test_a_project_taiga_refuses_is_403_with_taigas_reason(
    api: Api, fake_taiga: FakeTaiga
) -> None:
    response = await api.run(body_for(fake_taiga, "bob", project_id=OTHER_PROJECT_ID))

    assert response.status_code == 403
    assert "permission" in response.json()["detail"]


@pytest.mark.anyio
async def test_taiga_failing_upstream_is_502(api: Api, fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(500, times=10, method="GET", path="/projects/*")

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 502
    assert response.json()["detail"].startswith("Taiga failed")


@pytest.mark.anyio
async def test_the_model_failing_upstream_is_502(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    # No scripted turn: the fake answers 400 invalid_request_error.
    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 502
    assert response.json()["detail"].startswith("The model service failed")
    assert fake_taiga.requests_to("POST", "*") == []


@pytest.mark.anyio
async def test_the_planning_deadline_passing_is_504_and_writes_nothing(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    api = await open_api(clock=JumpingClock())
    fake_anthropic.script(PLAN_TURN)

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 504
    answer = response.json()
    assert answer["detail"].startswith("Planning stopped early (the time limit of 90 s")
    assert answer["stopped"] == "deadline"
    assert fake_taiga.requests_to("POST", "*") == []


@pytest.mark.anyio
async def test_the_request_timeout_passing_is_504(
    open_api: Callable[..., Any], fake_taiga: FakeTaiga
) -> None:
    api = await open_api(request_timeout=0.05)
    fake_taiga.set_latency(1.0)

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 504


@pytest.mark.anyio
async def test_tokens_are_never_logged_or_echoed(
    api: Api,
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = body_for(fake_taiga)
    body["refresh"] = fake_taiga.login_tokens("alice")["refresh"]
    fake_anthropic.script(PLAN_TURN)

    ok = await api.run(body)
    invalid = await api.run(body | {"project_id": "x"})

    for secret in (body["auth_token"], body["refresh"], KEY):
        assert secret not in caplog.text
        assert secret not in ok.text and secret not in invalid.text
        assert all(secret not in r.raw for r in fake_anthropic.requests)


# --------------------------------------------------------------------------- the sprint


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Create user stories and tasks for Sprint 6.", "Sprint 6"),
        ("Sprint 5 went well.\n\nCreate stories for sprint 6", "Sprint 6"),
        ("plan SPRINT #7 please", "Sprint 7"),
        ("plan sprint6", "Sprint 6"),
        ("Stories for the Release Candidate, not sprint 5.", "Sprint 5"),
        ("Put this in Release Candidate", "Release Candidate"),
        ("Sprint 10 planning", "Sprint 10"),
        ("nothing about it", None),
    ],
)
def test_the_target_sprint_comes_from_the_last_sprint_the_prompt_names(
    prompt: str, expected: str | None
) -> None:
    assert sprint_from_prompt(prompt, ["Sprint 5", "Sprint 1", "Release Candidate"]) == expected


@pytest.mark.anyio
async def test_a_sprint_name_longer_than_its_column_is_422_in_words_and_writes_nothing(
    api: Api, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    wordy = fake_taiga.add_milestone(PROJECT_ID, "S" * 300, "2024-07-01", "2024-07-14")
    fake_anthropic.script(PLAN_TURN)
    stories_before = len(fake_taiga.stories(PROJECT_ID))

    response = await api.run(body_for(fake_taiga, milestone_id=wordy["id"]))

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "The sprint name is 300 characters long; I can keep at most 255. Shorten it and try "
        "again."
    )
    assert len(fake_taiga.stories(PROJECT_ID)) == stories_before
    assert await plans(api.runtime.db) == []
