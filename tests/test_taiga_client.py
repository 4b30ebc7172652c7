"""TaigaClient / TaigaSession against the fake Taiga over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import anyio
import httpx
import pytest

from taiga import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    ResponseLost,
    TaigaClient,
    TaigaError,
    TaigaSession,
    TaigaTokens,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from taiga.responses import success_json
from tests.peers.clock import FakeClock
from tests.peers.fake_taiga import (
    BOB_ID,
    OTHER_PROJECT_ID,
    OTHER_PROJECT_SLUG,
    PROJECT_ID,
    PROJECT_SLUG,
    SPRINT5_ID,
    SPRINT6_ID,
    VIEW_PERMISSIONS,
    FakeTaiga,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def taiga_client(
    fake: FakeTaiga, clock: FakeClock | None = None, **kwargs: object
) -> AsyncIterator[TaigaClient]:
    async with TaigaClient(fake.api_url, clock=clock or FakeClock(), **kwargs) as client:  # type: ignore[arg-type]
        yield client


def tokens_for(fake: FakeTaiga, username: str) -> TaigaTokens:
    return TaigaTokens.model_validate(fake.login_tokens(username))


@asynccontextmanager
async def session_for(
    fake: FakeTaiga, username: str = "alice", clock: FakeClock | None = None, **kwargs: object
) -> AsyncIterator[TaigaSession]:
    async with taiga_client(fake, clock, **kwargs) as client:
        yield client.session(tokens_for(fake, username))


# --------------------------------------------------------------------------- auth


async def test_login_returns_the_user_and_both_tokens(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        result = await client.login("alice", "alice123")
    assert (result.user.id, result.user.username) == (6, "alice")
    assert result.tokens.refresh is not None
    assert result.tokens.auth_token.get_secret_value() != result.tokens.refresh.get_secret_value()
    sent = fake_taiga.requests_to("POST", "/auth")[0].json
    assert sent == {"type": "normal", "username": "alice", "password": "alice123"}


async def test_login_accepts_the_email_address(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        result = await client.login("alice@example.com", "alice123")
    assert result.user.id == 6


async def test_wrong_password_raises_bad_credentials_without_the_password(
    fake_taiga: FakeTaiga,
) -> None:
    async with taiga_client(fake_taiga) as client:
        with pytest.raises(BadCredentials) as caught:
            await client.login("alice", "hunter2-wrong")
    assert caught.value.status == 401
    assert "No active account found with the given credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)


async def test_me_returns_the_user_with_role_names(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        me = await session.me()
    assert (me.id, me.username, me.roles) == (BOB_ID, "bob", ["Viewer"])


async def test_refresh_rotates_the_refresh_token(fake_taiga: FakeTaiga) -> None:
    old = fake_taiga.login_tokens("alice")
    async with taiga_client(fake_taiga) as client:
        fresh = await client.refresh(old["refresh"])
        assert fresh.auth_token.get_secret_value() != old["auth_token"]
        with pytest.raises(Unauthorized) as caught:
            await client.refresh(old["refresh"])
    assert "sign in to Taiga again" in str(caught.value)
    assert old["refresh"] not in str(caught.value)


async def test_garbage_token_raises_unauthorized(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        session = client.session(TaigaTokens(auth_token="garbage.token.value"))
        with pytest.raises(Unauthorized) as caught:
            await session.me()
    assert "garbage" not in str(caught.value)
    assert "no longer valid" in str(caught.value)


async def test_missing_credentials_raise_unauthorized(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        response = await client.request("GET", "/users/me")
        with pytest.raises(Unauthorized) as caught:
            success_json(response)
    assert "Authentication credentials were not provided" in str(caught.value)


async def test_only_a_bearer_authorization_header_is_sent(fake_taiga: FakeTaiga) -> None:
    tokens = tokens_for(fake_taiga, "alice")
    async with taiga_client(fake_taiga) as client:
        await client.session(tokens).me()
    headers = fake_taiga.requests[-1].headers
    assert headers["authorization"] == f"Bearer {tokens.auth_token.get_secret_value()}"
    assert "cookie" not in headers


# --------------------------------------------------------------------------- projects


async def test_owner_gets_the_project_with_all_permissions_members_and_sprints(
    fake_taiga: FakeTaiga,
) -> None:
    async with session_for(fake_taiga) as session:
        project = await session.get_project(PROJECT_ID)
    assert (project.id, project.slug) == (PROJECT_ID, PROJECT_SLUG)
    assert len(project.my_permissions) == 40 and "add_us" in project.my_permissions
    assert project.i_am_admin and project.i_am_member
    assert {(m.id, m.username, m.role_name) for m in project.members} == {
        (6, "alice", "Product Owner"),
        (7, "bob", "Viewer"),
    }
    assert [m.name for m in project.milestones] == ["Sprint 5", "Sprint 6"]


async def test_viewer_gets_only_view_permissions(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        project = await session.get_project_by_slug(PROJECT_SLUG)
    assert project.my_permissions == frozenset(VIEW_PERMISSIONS)
    assert not project.i_am_admin and project.i_am_member


async def test_superuser_non_member_is_admin_but_not_member(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "admin") as session:
        project = await session.get_project(PROJECT_ID)
    assert project.i_am_admin and not project.i_am_member
    assert len(project.my_permissions) == 40


async def test_non_member_reading_a_private_project_is_forbidden(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        with pytest.raises(Forbidden) as caught:
            await session.get_project(OTHER_PROJECT_ID)
    assert str(caught.value) == "You do not have permission to perform this action."


async def test_by_slug_not_found_says_not_found_or_not_a_member(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        for slug in ("no-such-project", OTHER_PROJECT_SLUG):
            with pytest.raises(NotFound) as caught:
                await session.get_project_by_slug(slug)
            assert str(caught.value) == (
                f"Project '{slug}' was not found, or you are not a member of it."
            )


async def test_unknown_project_id_raises_not_found(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        with pytest.raises(NotFound, match="Project 999999 was not found"):
            await session.get_project(999999)


# --------------------------------------------------------------------------- milestones


async def test_milestones_are_listed_newest_first_with_their_stories(
    fake_taiga: FakeTaiga,
) -> None:
    async with session_for(fake_taiga) as session:
        milestones = await session.list_milestones(PROJECT_ID)
    assert [(m.id, m.name) for m in milestones] == [
        (SPRINT6_ID, "Sprint 6"),
        (SPRINT5_ID, "Sprint 5"),
    ]
    assert [s.subject for s in milestones[0].user_stories] == [
        "Export report",
        "Bulk into sprint 6?",
    ]
    assert milestones[0].user_stories[0].milestone_slug == "sprint-6"
    assert milestones[1].estimated_start == date(2024, 5, 1)


async def test_get_milestone_and_unknown_milestone(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        milestone = await session.get_milestone(SPRINT5_ID)
        assert (milestone.name, len(milestone.user_stories)) == ("Sprint 5", 2)
        with pytest.raises(NotFound, match="Sprint 424242 was not found"):
            await session.get_milestone(424242)


@pytest.mark.parametrize("name", ["Sprint 6", "sprint6", "  SPRINT   6 ", "sprint\t6"])
async def test_milestone_by_name_ignores_case_and_whitespace(
    fake_taiga: FakeTaiga, name: str
) -> None:
    async with session_for(fake_taiga) as session:
        milestone = await session.get_milestone_by_name(PROJECT_ID, name)
    assert milestone is not None and milestone.id == SPRINT6_ID


async def test_milestone_by_name_returns_none_when_missing(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        assert await session.get_milestone_by_name(PROJECT_ID, "Sprint 7") is None


async def test_create_milestone_and_duplicate_name(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        created = await session.create_milestone(
            PROJECT_ID, "Sprint 7", date(2024, 5, 29), date(2024, 6, 11)
        )
        assert (created.name, created.slug, created.estimated_finish) == (
            "Sprint 7",
            "sprint-7",
            date(2024, 6, 11),
        )
        with pytest.raises(ValidationFailed) as caught:
            await session.create_milestone(
                PROJECT_ID, "Sprint 7", date(2024, 5, 29), date(2024, 6, 11)
            )
    assert caught.value.fields == {"name": ["Duplicated name"]}
    assert "Duplicated name" in str(caught.value)
    assert fake_taiga.requests_to("POST", "/milestones")[0].json == {
        "project": PROJECT_ID,
        "name": "Sprint 7",
        "estimated_start": "2024-05-29",
        "estimated_finish": "2024-06-11",
    }


# --------------------------------------------------------------------------- stories and tasks


async def test_list_user_stories_by_sprint_backlog_and_all(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        everything = await session.list_user_stories(PROJECT_ID)
        sprint5 = await session.list_user_stories(PROJECT_ID, milestone_id=SPRINT5_ID)
        backlog = await session.list_user_stories(PROJECT_ID, backlog=True)
        with pytest.raises(ValueError):
            await session.list_user_stories(PROJECT_ID, milestone_id=1, backlog=True)
    assert [s.ref for s in everything] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.subject for s in sprint5] == ["As a user I can log in", "As a user I can log out"]
    assert sprint5[0].tags == ["auth", "p1"] and sprint5[0].status_name == "New"
    assert {s.milestone for s in backlog} == {None} and len(backlog) == 3


async def test_lists_page_through_every_story_without_following_next_links(
    fake_taiga: FakeTaiga,
) -> None:
    for n in range(58):
        fake_taiga.add_story(PROJECT_ID, f"Story {n}")
    async with session_for(fake_taiga, page_size=30) as session:
        fake_taiga.clear_requests()
        stories = await session.list_user_stories(PROJECT_ID)
    assert len(stories) == 65 and len({s.id for s in stories}) == 65
    pages = [r.query for r in fake_taiga.requests]
    assert [(q["page"], q["page_size"]) for q in pages] == [("1", "30"), ("2", "30"), ("3", "30")]


async def test_a_list_that_fits_one_page_takes_one_request(fake_taiga: FakeTaiga) -> None:
    for n in range(58):
        fake_taiga.add_story(PROJECT_ID, f"Story {n}")
    async with session_for(fake_taiga) as session:
        fake_taiga.clear_requests()
        assert len(await session.list_user_stories(PROJECT_ID)) == 65
    assert len(fake_taiga.requests) == 1


async def test_a_page_past_the_end_ends_the_list() -> None:
    """The list shrank between pages: Taiga's 404 for the missing page ends it cleanly."""
    story = {
        "id": 1,
        "ref": 1,
        "subject": "x",
        "project": 1,
        "created_date": "2026-11-24T10:55:11.945Z",
    }
    calls: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        if request.url.params["page"] == "1":
            next_url = "http://taiga-back.internal/api/v1/userstories?project=1&page=2"
            headers = {"x-paginated": "true", "X-Pagination-Next": next_url}
            return httpx.Response(200, json=[story], headers=headers)
        return httpx.Response(
            404, json={"_error_message": "Page is not 'last', nor can it be converted to an int."}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TaigaClient("http://taiga.test/api/v1", http=http) as client:
        stories = await client.session(TaigaTokens(auth_token="t")).list_user_stories(1)
    assert [s.id for s in stories] == [1]
    assert [u.host for u in calls] == ["taiga.test", "taiga.test"]


async def test_get_user_story_and_unknown_story(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        story = await session.get_user_story(1)
        assert (story.subject, story.description, story.milestone_slug) == (
            "As a user I can log in",
            "Login story",
            "sprint-5",
        )
        with pytest.raises(NotFound, match="User story 999999 was not found"):
            await session.get_user_story(999999)


async def test_create_user_story_with_sprint_and_tags(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        story = await session.create_user_story(
            PROJECT_ID,
            "Export CSV",
            description="As CSV",
            milestone_id=SPRINT6_ID,
            tags=["export", "p2"],
        )
    assert (story.ref, story.milestone, story.milestone_slug, story.owner) == (12, 2, "sprint-6", 6)
    assert story.tags == ["export", "p2"] and story.description == "As CSV"
    assert fake_taiga.stories(PROJECT_ID)[-1]["subject"] == "Export CSV"
    assert fake_taiga.requests[-1].json == {
        "project": PROJECT_ID,
        "subject": "Export CSV",
        "description": "As CSV",
        "milestone": SPRINT6_ID,
        "tags": ["export", "p2"],
    }


async def test_viewer_cannot_create_a_story(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        with pytest.raises(Forbidden) as caught:
            await session.create_user_story(PROJECT_ID, "Bob tries to add")
    assert caught.value.status == 403
    assert len(fake_taiga.stories(PROJECT_ID)) == 7


async def test_invalid_story_raises_validation_failed_with_fields(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        with pytest.raises(ValidationFailed) as caught:
            await session.create_user_story(999999, "x")
    assert caught.value.fields == {"project": ["Invalid pk '999999' - object does not exist."]}


async def test_list_tasks_by_story_and_by_sprint(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        by_story = await session.list_tasks(user_story_id=1)
        by_sprint = await session.list_tasks(project_id=PROJECT_ID, milestone_id=SPRINT5_ID)
        with pytest.raises(ValueError):
            await session.list_tasks()
    assert [t.ref for t in by_story] == [8, 9, 10]
    assert [t.user_story for t in by_sprint] == [1, 1, 1, None]


async def test_tasks_share_the_story_ref_sequence(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        story = await session.create_user_story(PROJECT_ID, "Story", milestone_id=SPRINT5_ID)
        task = await session.create_task(
            PROJECT_ID, "Task", user_story_id=story.id, milestone_id=SPRINT5_ID, description="do it"
        )
    assert (story.ref, task.ref) == (12, 13)
    assert (task.user_story, task.milestone, task.description) == (story.id, SPRINT5_ID, "do it")
    assert fake_taiga.tasks(PROJECT_ID)[-1]["subject"] == "Task"


async def test_viewer_cannot_create_a_task(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga, "bob") as session:
        with pytest.raises(Forbidden):
            await session.create_task(PROJECT_ID, "Bob task", user_story_id=1)


# --------------------------------------------------------------------------- bad URLs and transport


async def test_an_unknown_path_raises_a_clear_unavailable(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        response = await client.request("GET", "/nonexistent")
        with pytest.raises(Unavailable) as caught:
            success_json(response)
    assert "web page instead of API data" in str(caught.value)


async def test_a_base_url_without_the_api_prefix_fails_clearly(fake_taiga: FakeTaiga) -> None:
    async with TaigaClient(fake_taiga.origin, clock=FakeClock()) as client:
        with pytest.raises(Unavailable, match="/api/v1"):
            await client.login("alice", "alice123")


async def test_connection_refused_raises_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = FakeClock()
    async with TaigaClient(f"http://127.0.0.1:{port}/api/v1", clock=clock) as client:
        with pytest.raises(Unavailable) as caught:
            await client.session(TaigaTokens(auth_token="t")).me()
    assert not isinstance(caught.value, ResponseLost)
    assert clock.sleeps == [0.5, 1.0]  # the read was retried read_retries times


async def test_reads_are_retried_on_5xx(fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(503, times=2, method="GET", path="/users/me")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        assert (await session.me()).username == "alice"
    assert clock.sleeps == [0.5, 1.0]
    assert len(fake_taiga.requests_to("GET", "/users/me")) == 3


async def test_reads_give_up_after_read_retries(fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(500, times=5, method="GET")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock, read_retries=1) as session:
        with pytest.raises(Unavailable) as caught:
            await session.me()
    assert caught.value.status == 500 and "HTTP 500" in str(caught.value)
    assert clock.sleeps == [0.5]


async def test_read_retries_stop_at_the_deadline(fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(503, times=5, method="GET")
    clock = FakeClock()
    async with taiga_client(fake_taiga, clock) as client:
        session = client.session(tokens_for(fake_taiga, "alice"), deadline=clock.now() + 0.7)
        with pytest.raises(Unavailable):
            await session.me()
    assert clock.sleeps == [0.5]


async def test_a_call_waits_for_taiga_no_longer_than_the_session_deadline_leaves() -> None:
    """The per-call timeout shrinks to what is left of the deadline (a floor of 1 s: deciding
    what a passed deadline stops is the caller's business)."""
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"id": 6, "username": "alice", "full_name_display": "A"})

    clock = FakeClock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TaigaClient("http://taiga.test/api/v1", http=http, clock=clock) as client:
        session = client.session(TaigaTokens(auth_token="t"), deadline=clock.now() + 2.5)
        await session.me()
        clock.advance(3)
        await session.me()
        await client.session(TaigaTokens(auth_token="t")).me()
    assert [(t["connect"], t["read"], t["write"], t["pool"]) for t in seen] == [
        (2.5, 2.5, 2.5, 2.5),
        (1.0, 1.0, 1.0, 1.0),
        (10.0, 15.0, 15.0, 15.0),
    ]


async def test_writes_are_not_retried_on_5xx(fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(503, method="POST", path="/userstories")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        with pytest.raises(Unavailable) as caught:
            await session.create_user_story(PROJECT_ID, "Once")
    assert not isinstance(caught.value, ResponseLost)
    assert clock.sleeps == []
    assert len(fake_taiga.requests_to("POST", "/userstories")) == 1
    assert len(fake_taiga.stories(PROJECT_ID)) == 7


async def test_a_lost_write_response_raises_response_lost_and_the_story_exists(
    fake_taiga: FakeTaiga,
) -> None:
    fake_taiga.lose_next_response(method="POST", path="/userstories")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        with pytest.raises(ResponseLost) as caught:
            await session.create_user_story(PROJECT_ID, "Maybe saved")
    assert "may or may not have been saved" in str(caught.value)
    assert len(fake_taiga.requests_to("POST", "/userstories")) == 1
    assert fake_taiga.stories(PROJECT_ID)[-1]["subject"] == "Maybe saved"
    assert clock.sleeps == []


async def test_a_lost_read_response_is_retried(fake_taiga: FakeTaiga) -> None:
    fake_taiga.lose_next_response(method="GET", path="/users/me")
    async with session_for(fake_taiga) as session:
        assert (await session.me()).username == "alice"
    assert len(fake_taiga.requests_to("GET", "/users/me")) == 2


async def test_a_write_that_times_out_raises_response_lost(fake_taiga: FakeTaiga) -> None:
    fake_taiga.set_latency(0.5)
    async with session_for(fake_taiga, timeout=0.05) as session:
        with pytest.raises(ResponseLost):
            await session.create_task(PROJECT_ID, "Slow task")


# --------------------------------------------------------------------------- throttling


async def test_a_short_throttle_is_slept_through_and_retried(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(1, wait_seconds=3, method="GET")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        assert len(await session.list_milestones(PROJECT_ID)) == 2
    assert clock.sleeps == [3.0]
    assert len(fake_taiga.requests_to("GET", "/milestones")) == 2


async def test_a_throttled_write_is_retried_once_and_applied_once(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(1, wait_seconds=2, method="POST")
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        await session.create_user_story(PROJECT_ID, "After the wait")
    assert clock.sleeps == [2.0]
    assert [s["subject"] for s in fake_taiga.stories(PROJECT_ID)].count("After the wait") == 1


async def test_a_long_throttle_raises_rate_limited(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(1, wait_seconds=60)
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        with pytest.raises(RateLimited) as caught:
            await session.me()
    assert caught.value.wait_seconds == 60
    assert str(caught.value) == "Taiga is rate-limiting requests; try again in 60 s."
    assert clock.sleeps == []


async def test_a_throttle_longer_than_the_deadline_raises(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(1, wait_seconds=5)
    clock = FakeClock()
    async with taiga_client(fake_taiga, clock) as client:
        session = client.session(tokens_for(fake_taiga, "alice"), deadline=clock.now() + 2)
        with pytest.raises(RateLimited) as caught:
            await session.me()
    assert caught.value.wait_seconds == 5
    assert clock.sleeps == []


async def test_a_second_throttle_in_a_row_raises(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(2, wait_seconds=3)
    clock = FakeClock()
    async with session_for(fake_taiga, clock=clock) as session:
        with pytest.raises(RateLimited):
            await session.me()
    assert clock.sleeps == [3.0]


async def test_a_throttled_login_raises_rate_limited(fake_taiga: FakeTaiga) -> None:
    fake_taiga.throttle_next(1, wait_seconds=60, path="/auth")
    async with taiga_client(fake_taiga) as client:
        with pytest.raises(RateLimited):
            await client.login("alice", "alice123")


# --------------------------------------------------------------------------- token refresh


class TokenStore:
    """What agent/identity.py does over the database: persist, and re-read on a lost race."""

    def __init__(self, client: TaigaClient, tokens: TaigaTokens) -> None:
        self.client = client
        self.tokens = tokens
        self.changed = asyncio.Event()
        self.refresh_calls = 0
        self.rejected = 0

    async def hook(self, stale: TaigaTokens) -> TaigaTokens:
        self.refresh_calls += 1
        assert stale.refresh is not None
        try:
            fresh = await self.client.refresh(stale.refresh.get_secret_value())
        except Unauthorized:
            self.rejected += 1
            with anyio.fail_after(5):
                while self.tokens.auth_token == stale.auth_token:
                    await self.changed.wait()
            return self.tokens
        self.tokens = fresh
        self.changed.set()
        return fresh


async def test_an_expired_token_is_refreshed_once_and_the_call_repeated(
    fake_taiga: FakeTaiga,
) -> None:
    async with taiga_client(fake_taiga) as client:
        store = TokenStore(client, tokens_for(fake_taiga, "alice"))
        session = client.session(store.tokens, on_refresh=store.hook)
        fake_taiga.expire_access_tokens("alice")
        assert (await session.me()).username == "alice"
    assert store.refresh_calls == 1
    assert session.tokens is store.tokens
    assert [r.path for r in fake_taiga.requests] == ["/users/me", "/auth/refresh", "/users/me"]


async def test_without_a_hook_an_expired_token_raises_unauthorized(fake_taiga: FakeTaiga) -> None:
    async with session_for(fake_taiga) as session:
        fake_taiga.expire_access_tokens("alice")
        with pytest.raises(Unauthorized):
            await session.me()


async def test_a_second_401_after_refreshing_raises_unauthorized(fake_taiga: FakeTaiga) -> None:
    calls: list[TaigaTokens] = []

    async def useless_hook(stale: TaigaTokens) -> TaigaTokens:
        calls.append(stale)
        return stale

    async with taiga_client(fake_taiga) as client:
        session = client.session(tokens_for(fake_taiga, "alice"), on_refresh=useless_hook)
        fake_taiga.expire_access_tokens("alice")
        with pytest.raises(Unauthorized):
            await session.me()
    assert len(calls) == 1


async def test_a_401_without_a_token_error_does_not_spend_the_refresh_token() -> None:
    """Taiga's NotAuthenticated 401 means no bearer token arrived (e.g. a proxy dropped the
    header): refreshing cannot help and would rotate the stored pair for nothing."""
    hook_calls: list[TaigaTokens] = []

    async def hook(stale: TaigaTokens) -> TaigaTokens:
        hook_calls.append(stale)
        return TaigaTokens(auth_token="fresh", refresh="fresh-refresh")

    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "_error_message": "Authentication credentials were not provided.",
            "_error_type": "taiga.base.exceptions.NotAuthenticated",
        }
        return httpx.Response(401, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TaigaClient("http://taiga.test/api/v1", http=http) as client:
        session = client.session(TaigaTokens(auth_token="t", refresh="r"), on_refresh=hook)
        with pytest.raises(Unauthorized, match="credentials were not provided"):
            await session.me()
    assert hook_calls == []


async def test_a_rejected_refresh_raises_unauthorized(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        store = TokenStore(client, tokens_for(fake_taiga, "alice"))

        async def hook(stale: TaigaTokens) -> TaigaTokens:
            assert stale.refresh is not None
            return await client.refresh(stale.refresh.get_secret_value())

        session = client.session(store.tokens, on_refresh=hook)
        fake_taiga.expire_access_tokens("alice")
        fake_taiga.expire_refresh_tokens("alice")
        with pytest.raises(Unauthorized, match="sign in to Taiga again"):
            await session.me()


async def test_concurrent_401s_in_one_session_refresh_once(fake_taiga: FakeTaiga) -> None:
    async with taiga_client(fake_taiga) as client:
        store = TokenStore(client, tokens_for(fake_taiga, "alice"))
        session = client.session(store.tokens, on_refresh=store.hook)
        fake_taiga.expire_access_tokens("alice")
        results = await asyncio.gather(
            session.me(), session.get_project(PROJECT_ID), session.list_milestones(PROJECT_ID)
        )
    assert results[0].username == "alice" and results[1].id == PROJECT_ID
    assert store.refresh_calls == 1
    assert len(fake_taiga.requests_to("POST", "/auth/refresh")) == 1


async def test_two_sessions_racing_to_refresh_both_succeed(fake_taiga: FakeTaiga) -> None:
    """Two runs for one user refresh at once; Taiga rejects the rotated refresh token for the
    loser, whose hook then re-reads the stored tokens."""
    async with taiga_client(fake_taiga) as client:
        store = TokenStore(client, tokens_for(fake_taiga, "alice"))
        first = client.session(store.tokens, on_refresh=store.hook)
        second = client.session(store.tokens, on_refresh=store.hook)
        fake_taiga.expire_access_tokens("alice")
        me, project = await asyncio.gather(first.me(), second.get_project(PROJECT_ID))
    assert me.username == "alice" and project.id == PROJECT_ID
    assert store.refresh_calls == 2 and store.rejected == 1
    assert first.tokens.auth_token == second.tokens.auth_token == store.tokens.auth_token
    assert len(fake_taiga.requests_to("POST", "/auth/refresh")) == 2


# --------------------------------------------------------------------------- secrets


async def test_tokens_do_not_appear_in_reprs(fake_taiga: FakeTaiga) -> None:
    tokens = tokens_for(fake_taiga, "alice")
    secret = tokens.auth_token.get_secret_value()
    async with taiga_client(fake_taiga) as client:
        session = client.session(tokens)
        for text in (repr(tokens), str(tokens), repr(session), repr(client)):
            assert secret not in text


async def test_a_login_body_of_the_wrong_shape_does_not_carry_the_tokens_in_its_traceback() -> None:
    """A proxy or another Taiga version answers /auth with a user we cannot parse: the error
    (and anything chained to it, which a log line prints) must not show the tokens."""
    secret, password = "eyJSECRET-access", "hunter2-" + "x" * 8

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "six", "auth_token": secret, "refresh": secret})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, TaigaClient("http://taiga.test/api/v1", http=http) as client:
        with pytest.raises(TaigaError) as caught:
            await client.login("alice", password)
    printed = "".join(traceback.format_exception(caught.value))
    assert "does not understand" in str(caught.value)
    assert secret not in printed and password not in printed
