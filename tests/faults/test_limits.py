"""Limits that protect the service and Taiga, through the real peers: one plan drafting per
person per channel, a per-workspace cap, the bounded pool of background work, cached names and
values longer than their column, on SQLite and PostgreSQL where the database holds the limit.

The fake Anthropic holds a model turn (`Gate`) to keep a plan drafting while the test acts."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlmodel import select

from bot.services.drafting import STALE_MARGIN
from storage import repositories as repo
from storage.models import ChannelProject
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PASSWORDS, FakeTaiga
from tests.peers.slack_harness import Gate, Harness, has_button, running_harness, story_turn

Json = dict[str, Any]
MINUTES = "We agreed to ship the CSV export.\nAlice: add the download button."
TURN = story_turn(("Export plans as CSV", ["Write the CSV writer"]))
PATIENCE = 30.0  # generous bounds: the machine is shared


async def reached(gate: Gate) -> None:
    assert await anyio.to_thread.run_sync(gate.reached.wait, PATIENCE), "no model call"


Arrange = Callable[..., Any]


@pytest.fixture
def arrange(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> Arrange:
    """`async with arrange(**settings) as h`: Alice linked, the channel planning in the
    recorded project; every hold is let go before the harness stops."""

    @asynccontextmanager
    async def harness(*holds: Gate, **settings: Any) -> AsyncIterator[Harness]:
        async with running_harness(
            tmp_path, fake_slack, fake_taiga, fake_anthropic, **settings
        ) as h:
            try:
                await h.link(h.alice, "alice")
                await h.set_project()
                yield h
            finally:
                for hold in holds:
                    hold.opened.set()

    return harness


async def planning_channel(h: Harness, name: str) -> str:
    channel = h.slack.add_channel(name)
    await h.set_project(channel)
    return channel


async def answer(h: Harness, form: Json) -> str:
    """The first private answer to a slash command (its response_url)."""
    post = await h.slack.wait_for_response_url(form["response_url"], within=PATIENCE)
    return str(post.body.get("text"))


async def proposals(h: Harness, count: int) -> None:
    """Wait until `count` proposals are shown and the work that showed them has ended."""
    await h.slack.wait_for(
        "chat.update", lambda c: c.ok and has_button(c.params, "plan_approve"), count=count,
        within=PATIENCE,
    )
    with anyio.fail_after(PATIENCE):
        await h.bot.services.drain()


# ------------------------------------------------------------ one draft per person per channel


@pytest.mark.anyio
async def test_a_second_plan_while_one_is_drafting_says_already_planning_and_links_the_thread(
    arrange: Arrange, database_url: str
) -> None:
    hold = Gate(TURN)
    async with arrange(hold, database_url=database_url) as h:
        h.anthropic.script(hold)
        await h.command(f"plan Sprint 6\n{MINUTES}")
        await reached(hold)
        root = h.slack.messages(h.channel)[0]["ts"]

        _, second = await h.command(f"plan Sprint 7\n{MINUTES}")
        said = await answer(h, second)
        mention = h.slack.app_mention_event(
            h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 8\n{MINUTES}", user=h.alice
        )
        await h.event(mention)
        ephemeral = await h.slack.wait_for("chat.postEphemeral", within=PATIENCE)

        thread_link = f"/archives/{h.channel}/p{root.replace('.', '')}"
        assert "already planning" in said and thread_link in said
        assert "already planning" in ephemeral.params["text"]
        assert thread_link in ephemeral.params["text"]
        assert len(h.anthropic.requests) == 1 and len(await h.plans()) == 1

        hold.opened.set()
        await proposals(h, 1)
        h.anthropic.script(TURN)
        await h.command(f"plan Sprint 7\n{MINUTES}")
        await proposals(h, 2)  # the finished draft no longer blocks
        assert len(await h.plans()) == 2


@pytest.mark.anyio
async def test_a_draft_whose_process_died_stops_blocking_after_the_planning_deadline(
    arrange: Arrange, database_url: str
) -> None:
    stuck = Gate(TURN)
    async with arrange(stuck, database_url=database_url) as h:
        h.anthropic.script(stuck, TURN)
        await h.command(f"plan Sprint 6\n{MINUTES}")
        await reached(stuck)

        deadline = timedelta(seconds=h.settings.agent_deadline_seconds)
        h.wall.offset = deadline + STALE_MARGIN + timedelta(seconds=1)
        _, form = await h.command(f"plan Sprint 7\n{MINUTES}")

        await h.slack.wait_for(  # the new plan is proposed while the dead one's call hangs
            "chat.update", lambda c: c.ok and has_button(c.params, "plan_approve"),
            within=PATIENCE,
        )
        assert h.slack.response_url_posts(form["response_url"]) == []
        assert len(h.anthropic.requests) == 2


# ------------------------------------------------------------------ the per-workspace cap


@pytest.mark.anyio
async def test_a_plan_over_the_workspace_cap_is_refused_in_words_and_starts_nothing(
    arrange: Arrange, database_url: str
) -> None:
    holds = (Gate(TURN), Gate(TURN))
    async with arrange(
        *holds, database_url=database_url, max_drafting_plans_per_workspace=2
    ) as h:
        second, third = await planning_channel(h, "design"), await planning_channel(h, "ops")
        h.anthropic.script(*holds)
        await h.command(f"plan Sprint 6\n{MINUTES}")
        await h.command(f"plan Sprint 6\n{MINUTES}", channel=second)
        for hold in holds:
            await reached(hold)

        _, form = await h.command(f"plan Sprint 6\n{MINUTES}", channel=third)

        said = await answer(h, form)
        assert said == "2 plans are being drafted in this workspace; try again in a minute."
        assert h.slack.messages(third) == [] and len(h.anthropic.requests) == 2
        for hold in holds:
            hold.opened.set()
        await proposals(h, 2)
        h.anthropic.script(TURN)
        await h.command(f"plan Sprint 6\n{MINUTES}", channel=third)
        await proposals(h, 3)


# ------------------------------------------------------------------ the bounded pool


@pytest.mark.anyio
async def test_a_burst_waits_its_turn_in_the_pool_and_a_full_queue_answers_in_words(
    arrange: Arrange,
) -> None:
    hold = Gate(TURN)
    async with arrange(hold, max_concurrent_work=1, max_queued_work=1) as h:
        queued_in = await planning_channel(h, "design")
        refused_in = await planning_channel(h, "ops")
        h.anthropic.script(hold, TURN)
        first, _ = await h.command(f"plan Sprint 6\n{MINUTES}")
        await reached(hold)

        queued, queued_form = await h.command(f"plan Sprint 6\n{MINUTES}", channel=queued_in)
        refused, refused_form = await h.command(f"plan Sprint 6\n{MINUTES}", channel=refused_in)

        assert first.status_code == queued.status_code == refused.status_code == 200
        assert "number 1 in the queue" in await answer(h, queued_form)
        assert "too busy" in await answer(h, refused_form)
        assert h.slack.messages(queued_in) == [] and len(h.anthropic.requests) == 1

        hold.opened.set()
        await proposals(h, 2)  # the queued plan ran once the first was done
        assert h.slack.messages(refused_in) == [] and len(h.anthropic.requests) == 2
        assert len(h.slack.response_url_posts(refused_form["response_url"])) == 1


@pytest.mark.anyio
async def test_logging_in_is_never_queued_or_refused_while_plans_fill_the_pool(
    arrange: Arrange,
) -> None:
    hold = Gate(TURN)
    async with arrange(hold, max_concurrent_work=1, max_queued_work=0) as h:
        h.anthropic.script(hold, TURN)
        await h.command(f"plan Sprint 6\n{MINUTES}")
        await reached(hold)  # the one slot is taken and nothing may queue

        await h.command("login", user=h.bob)
        opened = await h.slack.wait_for("views.open", within=PATIENCE)
        values = {"username": {"username": "bob"}, "password": {"password": PASSWORDS["bob"]}}
        submitted = await h.payload(
            h.slack.view_submission_payload(
                opened.response["view"]["id"], user=h.bob, values=values
            )
        )
        assert submitted.json()["response_action"] == "update"
        cipher = h.bot.services.cipher
        for _ in range(int(PATIENCE / 0.05)):  # stored after the answer, not dropped by the pool
            link = await h.db.run(
                lambda s: repo.get_link(s, cipher=cipher, team_id=h.slack.team_id, user_id=h.bob)
            )
            if link is not None:
                break
            await anyio.sleep(0.05)
        assert link is not None and link.taiga_username == "bob"


class Batches:
    """Model turns held until the test opens them, then each waiting (bounded) until `size`
    have arrived together; counts the most ever in flight."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.arrived = 0
        self.in_flight = 0
        self.most = 0
        self.opened = False
        self._changed = threading.Condition()

    def open(self) -> None:
        with self._changed:
            self.opened = True
            self._changed.notify_all()

    def __call__(self, _body: Json) -> Json:
        with self._changed:
            batch_full = (self.arrived // self.size + 1) * self.size
            self.arrived += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self._changed.notify_all()
            self._changed.wait_for(
                lambda: self.opened and self.arrived >= batch_full, timeout=PATIENCE
            )
            self.in_flight -= 1
        return TURN


@pytest.mark.anyio
async def test_a_burst_of_plans_runs_at_most_the_pool_size_of_model_calls_at_once(
    arrange: Arrange,
) -> None:
    batches = Batches(size=4)
    async with arrange(
        max_concurrent_work=4, max_queued_work=100, max_drafting_plans_per_workspace=20
    ) as h:
        channels = [await planning_channel(h, f"team-{n}") for n in range(12)]
        h.anthropic.script(*[batches] * 12)

        forms = [(await h.command(f"plan Sprint 6\n{MINUTES}", channel=c))[1] for c in channels]
        for position, form in enumerate(forms[4:], start=1):
            assert f"number {position} in the queue" in await answer(h, form)
        batches.open()

        await proposals(h, 12)
        assert batches.most == 4  # held open, an unbounded burst would have had 12 in flight
        assert all(h.slack.response_url_posts(f["response_url"]) == [] for f in forms[:4])


# ------------------------------------------------------------------ cached names


@pytest.mark.anyio
async def test_the_names_of_people_in_the_minutes_are_looked_up_once(arrange: Arrange) -> None:
    async with arrange() as h:
        minutes = f"<@{h.bob}> will build the export.\n<@{h.bob}> and <@{h.alice}> review it."
        h.anthropic.script(TURN, TURN)
        for sprint in ("Sprint 6", "Sprint 7"):
            await h.command(f"plan {sprint}\n{minutes}")
            await h.settle()
        await proposals(h, 2)

        looked_up = [c.params.get("user") for c in h.slack.calls("users.info")]
        assert looked_up.count(h.bob) == 1 and looked_up.count(h.alice) == 1
        assert "@bob will build the export" in str(h.anthropic.requests[1].body["messages"][0])


# ------------------------------------------------------------------ values longer than a column


@pytest.mark.anyio
async def test_a_sprint_name_too_long_once_mentions_are_names_is_refused_before_anything_starts(
    arrange: Arrange, database_url: str
) -> None:
    async with arrange(database_url=database_url) as h:
        wordy = h.slack.add_user("W" * 60, display_name="w" * 60)
        sprint = " ".join([f"<@{wordy}>"] * 6)  # six times "@" and 60 characters, 5 spaces

        _, form = await h.command(f"plan {sprint}\n{MINUTES}")

        said = await answer(h, form)
        assert said == (
            "The sprint name is 371 characters long; I can keep at most 200. Shorten it and "
            "try again."
        )
        assert h.slack.messages(h.channel) == [] and h.anthropic.requests == []
        assert await h.plans() == []


@pytest.mark.anyio
async def test_a_typed_sprint_name_longer_than_taiga_takes_is_refused_not_cut(
    arrange: Arrange,
) -> None:
    async with arrange() as h:
        _, form = await h.command(f"plan {'S' * 250}\n{MINUTES}")

        said = await answer(h, form)
        assert said.startswith("The sprint name is 250 characters long; I can keep at most 200.")
        assert h.slack.messages(h.channel) == [] and await h.plans() == []


@pytest.mark.anyio
async def test_a_taiga_project_name_longer_than_its_column_is_refused_in_words(
    arrange: Arrange, database_url: str
) -> None:
    async with arrange(database_url=database_url) as h:
        channel = h.slack.add_channel("long-names")
        h.taiga.add_project("P" * 300, owner="alice", slug="long-name")

        _, form = await h.command("project long-name", channel=channel)

        said = await answer(h, form)
        assert "The Taiga project name is 300 characters long; I can keep at most 255" in said

        def stored(session: Any) -> list[ChannelProject]:
            return list(
                session.exec(
                    select(ChannelProject).where(ChannelProject.slack_channel_id == channel)
                ).all()
            )

        assert await h.db.run(stored) == []
