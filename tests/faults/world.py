"""What the process-level fault tests share: the fake peers, one database that the app
processes and the test both open, Alice linked to Taiga in a planning channel, and plans drafted,
clicked and checked through the processes as Slack would drive them.

Plan `n` is drafted from minutes naming "P<n>" and proposes stories and tasks whose subjects
start with "P<n> ", so every object in the fake Taiga is traceable to its plan."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sqlmodel import select

from storage import repositories as repo
from storage.crypto import TokenCipher, generate_key
from storage.db import Database
from storage.models import Plan
from tests.peers.app_process import AppProcess, app_env
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import (
    block_text,
    link_account,
    set_channel_project,
    story_turn,
)

SETTLE_WAIT = 60.0  # bounded waits for the processes' background work
STORIES, TASKS = 2, 2  # per plan


@dataclass
class Drafted:
    plan_id: str
    ts: str  # the proposal message
    tag: str  # "P3": every subject of the plan starts with it


def subjects(tag: str) -> tuple[list[str], list[str]]:
    stories = [f"{tag} story {s}" for s in range(1, STORIES + 1)]
    tasks = [f"{tag} task {s}.{t}" for s in range(1, STORIES + 1) for t in range(1, TASKS + 1)]
    return stories, tasks


def _turn_for(body: dict[str, Any]) -> dict[str, Any]:
    """The model's answer to a planning request: the plan's stories, named after its tag."""
    tag = re.search(r"\bP\d+\b", json.dumps(body["messages"][0]))
    assert tag is not None, "the minutes name their plan"
    stories, _ = subjects(tag.group())
    return story_turn(
        *[(s, [f"{tag.group()} task {i}.{t}" for t in range(1, TASKS + 1)])
          for i, s in enumerate(stories, start=1)]
    )  # fmt: skip


@dataclass
class World:
    slack: FakeSlack
    taiga: FakeTaiga
    anthropic: FakeAnthropic
    db: Database
    database_url: str
    key: str
    folder: Path
    channel: str
    alice: str

    def env(self, **settings: str) -> dict[str, str]:
        return app_env(self.slack, self.taiga, self.anthropic, database_url=self.database_url,
                       key=self.key, **settings)  # fmt: skip

    def app(self, name: str, **settings: str) -> AppProcess:
        return AppProcess(self.env(**settings), self.folder, name)

    # --- driving the app as Slack would

    async def draft(self, app: AppProcess, n: int) -> Drafted:
        """`/taiga plan Sprint 6` with minutes naming P<n>, through `app`; waits for the
        proposal with its Approve button."""
        tag = f"P{n}"
        self.anthropic.script(_turn_for)
        form = self.slack.slash_command_form(
            "/taiga", f"plan Sprint 6\nWe agreed on the work of {tag}.", user=self.alice,
            channel=self.channel,
        )  # fmt: skip
        assert (await app.post_command(form)).status_code == 200
        call = await self.slack.wait_for(
            "chat.update",
            lambda c: c.ok and "plan_approve" in json.dumps(c.params.get("blocks"))
            and f"{tag} story 1" in block_text(c.params),
            within=SETTLE_WAIT,
        )
        ts = str(call.params["ts"])
        by_message = select(Plan).where(Plan.slack_message_ts == ts)
        plan = await self.db.run(lambda s: s.exec(by_message).one())
        return Drafted(plan.id, ts, tag)

    def click(self, plan: Drafted, action_id: str) -> dict[str, Any]:
        """The block_actions payload of Alice clicking `action_id` on the plan's message."""
        return self.slack.block_action_payload(self.channel, plan.ts, action_id, user=self.alice)

    # --- waiting and checking

    async def plan(self, plan_id: str) -> Plan:
        plan = await self.db.run(lambda s: repo.get_plan(s, plan_id))
        assert plan is not None
        return plan

    async def plans(self) -> list[Plan]:
        return await self.db.run(lambda s: list(s.exec(select(Plan))))

    async def wait_states(self, plans: Iterable[Drafted], states: set[str]) -> None:
        """Poll (bounded) until every plan is in one of `states`."""
        ids = [p.plan_id for p in plans]
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            rows = await self.db.run(
                lambda s: {p.id: p.state for p in s.exec(select(Plan).where(Plan.id.in_(ids)))}  # type: ignore[attr-defined]
            )
            if all(rows.get(i) in states for i in ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"plans not {states} within {SETTLE_WAIT}s: {rows}")
            await anyio.sleep(0.1)

    async def wait_shown(self, plan: Drafted, words: str) -> dict[str, Any]:
        """The latest successful update of the plan's message, once it contains `words`."""
        call = await self.slack.wait_for(
            "chat.update",
            lambda c: c.ok and c.params.get("ts") == plan.ts and words in block_text(c.params),
            within=SETTLE_WAIT,
        )
        return call.params

    async def assert_applied_exactly_once(self, plans: Iterable[Drafted]) -> None:
        """Every plan's stories and tasks exist once in Taiga, none was POSTed twice (since the
        fake's requests were last cleared), and the write ledger's done rows name exactly those
        objects."""
        stories = self.taiga.stories(PROJECT_ID)
        tasks = self.taiga.tasks(PROJECT_ID)
        # A request cut off mid-body by the kill reached the fake without one, and made nothing.
        posted = [r.json["subject"] for r in self.taiga.requests
                  if r.method == "POST" and r.path in ("/userstories", "/tasks")
                  and isinstance(r.json, dict)]  # fmt: skip
        for plan in plans:
            story_names, task_names = subjects(plan.tag)
            ours = {
                (kind, item["id"]): item["subject"]
                for kind, items in (("story", stories), ("task", tasks))
                for item in items
                if item["subject"].startswith(plan.tag + " ")
            }
            made = sorted(ours.values())
            assert made == sorted(story_names + task_names), plan.tag  # none twice, none missing
            sent = [s for s in posted if s.startswith(plan.tag + " ")]
            assert len(sent) == len(set(sent)) and set(sent) <= set(made), plan.tag  # sent once
            ledger = await self.db.run(lambda s, p=plan: repo.ledger_for_plan(s, p.plan_id))
            done = {(e.action_key.split(":")[0], e.taiga_id) for e in ledger.values() if e.done}
            assert done == set(ours), plan.tag  # object for object


async def make_world(
    folder: Path, slack: FakeSlack, taiga: FakeTaiga, anthropic: FakeAnthropic, database_url: str
) -> World:
    """Migrate the database, link Alice and let the channel plan in the fake's project."""
    db = Database(database_url)
    db.migrate()
    key = generate_key()
    channel = slack.add_channel("planning")
    alice = slack.add_user("Alice Doe", display_name="alice")
    await link_account(db, TokenCipher([key]), slack, taiga, alice, "alice")
    await set_channel_project(db, slack, channel, alice)
    return World(slack, taiga, anthropic, db, database_url, key, folder, channel, alice)
