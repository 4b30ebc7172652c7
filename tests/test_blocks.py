from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from agent.budgets import StopReason
from agent.proposal import (
    ProjectInfo,
    Proposal,
    ProposedMilestone,
    ProposedStory,
    ProposedTask,
    Usage,
)
from agent.undo import UndoItem, UndoReport
from bot.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    ACTION_RETRY,
    SlackMessage,
    error_blocks,
    expired_blocks,
    proposal_blocks,
    rejected_blocks,
    result_blocks,
    status_blocks,
)
from bot.blocks.actions import ACTION_UNDO
from bot.blocks.full_plan import full_plan_pages, full_plan_view
from bot.blocks.undo import undo_blocks
from tests.peers.fake_slack import MAX_BLOCKS_TEXT, FakeSlack, blocks_text_length, validate_blocks

PLAN_ID = "0f8e4b2a9c1d4e6f8a7b6c5d4e3f2a1b"
REQUESTER = "U0REQUEST"
WEB = "https://tree.taiga.example"


def _proposal(
    stories: int,
    tasks: int,
    *,
    subject: str = "Story {i}: make the login page remember the user",
    description: str = "As a returning user I want to stay signed in so that I save time.",
    task_subject: str = "Task {j} of story {i}: write the endpoint and its tests",
    **changes: Any,
) -> Proposal:
    fields: dict[str, Any] = {
        "project": ProjectInfo(id=7, slug="acme-web", name="Acme Web"),
        "target_sprint": "Sprint 6",
        "milestone": ProposedMilestone(
            name="Sprint 6",
            estimated_start=date(2024, 11, 25),
            estimated_finish=date(2024, 12, 8),
            to_create=True,
        ),
        "stories": [
            ProposedStory(
                key=f"new-story-{i}",
                subject=subject.format(i=i),
                description=description,
                tags=["auth"],
                tasks=[
                    ProposedTask(
                        key=f"new-story-{i}/task-{j}", subject=task_subject.format(i=i, j=j)
                    )
                    for j in range(1, tasks + 1)
                ],
            )
            for i in range(1, stories + 1)
        ],
        "summary": f"{stories} stories for the sign-in work.",
        "warnings": ["The minutes mention a deadline but no owner for the API work."],
        "usage": Usage(model_calls=1, tool_calls=3, input_tokens=12_345, output_tokens=2_345),
    }
    fields.update(changes)
    return Proposal(**fields)


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(blocks)
    return found


def _all_text(message: SlackMessage) -> str:
    return "\n".join(_texts(message.blocks))


def _buttons(message: SlackMessage) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


def _assert_within_limits(message: SlackMessage) -> None:
    blocks = message.blocks
    assert 1 <= len(blocks) <= 50
    assert validate_blocks(blocks) == []
    assert blocks_text_length(blocks) <= MAX_BLOCKS_TEXT
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            buttons = [e for e in block["elements"] if e["type"] == "button"]
            assert all(len(e["text"]["text"]) <= 75 for e in buttons)
    assert 0 < len(message.text) <= 200
    assert "<" not in message.text


def _story_accounting(message: SlackMessage) -> tuple[int, int]:
    text = _all_text(message)
    shown = len(re.findall(r"^\*\d+\. ", text, flags=re.MULTILINE))
    more = re.search(r"and (\d+) more stor", text)
    return shown, int(more.group(1)) if more else 0


def test_a_forty_story_plan_fits_every_slack_limit() -> None:
    message = proposal_blocks(PLAN_ID, _proposal(40, 5), REQUESTER, model="claude-x")

    _assert_within_limits(message)
    shown, more = _story_accounting(message)
    assert shown + more == 40
    assert "Task 1 of story 1:" in _all_text(message)  # the first stories keep their tasks


@pytest.mark.anyio
async def test_a_forty_story_plan_is_accepted_by_slack(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel("planning")
    message = proposal_blocks(PLAN_ID, _proposal(40, 5), REQUESTER)

    response = await slack_client.chat_postMessage(channel=channel, **message.as_kwargs())

    assert response["ok"] is True
    assert fake_slack.calls("chat.postMessage")[0].params["blocks"] == message.blocks


@pytest.mark.anyio
async def test_an_extreme_plan_is_condensed_not_refused(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel("planning")
    proposal = _proposal(
        120,
        25,
        subject="{i} " + "R&D <b> " * 60,
        description="& " * 4000,
        task_subject="{j} " + "x&y " * 120,
        warnings=["<!channel> & warning " * 30] * 40,
        summary="& " * 3000,
    )

    message = proposal_blocks(PLAN_ID, proposal, REQUESTER)
    response = await slack_client.chat_postMessage(channel=channel, **message.as_kwargs())

    _assert_within_limits(message)
    shown, more = _story_accounting(message)
    assert shown + more == 120
    assert response["ok"] is True


def test_a_small_plan_shows_every_story_and_task() -> None:
    proposal = _proposal(3, 4)

    message = proposal_blocks(PLAN_ID, proposal, REQUESTER, model="claude-x")
    text = _all_text(message)

    _assert_within_limits(message)
    assert message.blocks[0]["type"] == "header"
    assert "Sprint 6" in message.blocks[0]["text"]["text"]
    assert "New sprint *Sprint 6*" in text
    assert "25 Nov 2024 → 8 Dec 2024" in text
    for story in proposal.stories:
        assert f"*{story.key.removeprefix('new-story-')}. {story.subject}*" in text
        for task in story.tasks:
            assert task.subject in text
    assert proposal.stories[0].description in text
    assert ":warning: The minutes mention a deadline" in text
    assert "3 stories, 12 tasks" in text
    assert f"<@{REQUESTER}>" in text
    assert "1 model call · 3 tool calls" in text
    assert "tokens" not in text and "12,345" not in text  # token counts: logs and the API only
    assert "claude-x" in text
    assert "Sprint 6" in message.text and "3 stories" in message.text


def test_long_task_subjects_are_cut_at_a_word_boundary_in_the_checkboxes() -> None:
    words = "Write the export endpoint, its validation, the retry policy and the feature flag"
    proposal = _proposal(1, 1, task_subject=words + " {i}{j}")

    message = proposal_blocks(PLAN_ID, proposal, REQUESTER, model="claude-x")

    options = {
        option["text"]["text"]
        for block in message.blocks
        for element in [*block.get("elements", []), block.get("accessory") or {}]
        for option in element.get("options", [])
    }
    [shown] = [text for text in options if text.startswith("1.1 Write the export")]
    assert shown == "1.1 Write the export endpoint, its validation, the retry policy and the…"


def test_proposal_buttons_carry_the_plan_id_and_the_version_they_show() -> None:
    buttons = _buttons(proposal_blocks(PLAN_ID, _proposal(1, 1), REQUESTER, version=3))

    approve, reject = buttons[ACTION_APPROVE], buttons[ACTION_REJECT]
    assert approve["value"] == f"{PLAN_ID}:3" and approve["style"] == "primary"
    assert reject["value"] == f"{PLAN_ID}:3" and reject["style"] == "danger"
    assert reject["confirm"]["title"]["text"] == "Reject this plan?"
    assert "Nothing will be written" in reject["confirm"]["text"]["text"]


def test_an_empty_proposal_cannot_be_approved() -> None:
    proposal = _proposal(0, 0, milestone=ProposedMilestone(existing_id=3, name="Sprint 6"))

    message = proposal_blocks(PLAN_ID, proposal, REQUESTER)

    assert set(_buttons(message)) == {ACTION_REJECT}
    assert "Nothing to create" in _all_text(message) or "0 stories" in _all_text(message)


def test_an_existing_sprint_links_to_its_taskboard() -> None:
    milestone = ProposedMilestone(
        existing_id=3,
        name="Sprint 6",
        slug="sprint-6-1",
        estimated_start=date(2024, 11, 25),
        estimated_finish=date(2024, 12, 8),
    )
    proposal = _proposal(1, 1, milestone=milestone)

    text = _all_text(proposal_blocks(PLAN_ID, proposal, REQUESTER, web_url=WEB))

    assert f"<{WEB}/project/acme-web/taskboard/sprint-6-1|*Sprint 6*>" in text


def test_a_missing_sprint_that_will_not_be_created_is_explained() -> None:
    proposal = _proposal(1, 1, milestone=None, stopped=StopReason.DEADLINE)

    text = _all_text(proposal_blocks(PLAN_ID, proposal, REQUESTER))

    assert "does not exist" in text and "backlog" in text
    assert "stopped early: deadline" in text


def test_user_text_in_a_proposal_cannot_ping_link_or_restyle() -> None:
    proposal = _proposal(
        1,
        1,
        subject="<!channel> *urgent* <https://evil.example|https://good.example>",
        task_subject="<@U0OTHER> ping",
        warnings=["@here look"],
        summary="<!everyone> ~gone~",
    )

    message = proposal_blocks(PLAN_ID, proposal, REQUESTER)
    text = _all_text(message)

    assert re.findall(r"<[^>]*>", text) == [f"<@{REQUESTER}>"]  # no ping, mention or link
    assert not re.search(r"@(here|channel|everyone)\b", text)
    assert "*urgent*" not in text and "~gone~" not in text
    assert "<!" not in message.text


def test_status_keeps_the_latest_steps_within_limits() -> None:
    steps = [f"Step {i}: read {'&' * 50} from Taiga" for i in range(500)]

    message = status_blocks(steps, "Planning *Sprint 6*")
    text = _all_text(message)

    _assert_within_limits(message)
    assert "Step 499:" in text and "Step 0:" not in text
    assert "earlier steps" in text
    assert "*Planning" in text and "*Sprint 6*" not in text


@dataclass(frozen=True)
class _Created:
    kind: str
    action_key: str
    subject: str
    ref: int | None
    url: str
    story_key: str | None = None


@dataclass(frozen=True)
class _Failed:
    kind: str
    subject: str
    reason: str


@dataclass(frozen=True)
class _Result:
    plan_id: str
    complete: bool
    milestone_name: str | None = "Sprint 6"
    milestone_url: str | None = f"{WEB}/project/acme-web/taskboard/sprint-6"
    created: list[_Created] = field(default_factory=list)
    failed: list[_Failed] = field(default_factory=list)
    proposed_stories: int = 0
    proposed_tasks: int = 0
    left_out_stories: int = 0
    left_out_tasks: int = 0


def _created(stories: int, tasks: int) -> list[_Created]:
    items: list[_Created] = []
    ref = 100
    for i in range(1, stories + 1):
        ref += 1
        key = f"story:new-story-{i}"
        items.append(
            _Created("story", key, f"Story {i} & co", ref, f"{WEB}/project/acme-web/us/{ref}")
        )
        for j in range(1, tasks + 1):
            ref += 1
            items.append(
                _Created(
                    "task",
                    f"task:new-story-{i}/task-{j}",
                    f"Task {i}.{j}",
                    ref,
                    f"{WEB}/project/acme-web/task/{ref}",
                    story_key=key,
                )
            )
    return items


def test_result_links_every_created_item() -> None:
    result = _Result(PLAN_ID, complete=True, created=_created(2, 2))

    message = result_blocks(result, approver_id="U0APPROVE")
    text = _all_text(message)

    _assert_within_limits(message)
    assert f"<{WEB}/project/acme-web/us/101|#101 Story 1 &amp; co>" in text
    assert f"<{WEB}/project/acme-web/task/102|#102 Task 1.1>" in text
    assert f"<{WEB}/project/acme-web/taskboard/sprint-6|*Sprint 6*>" in text
    assert "2 stories and 4 tasks created" in text
    assert "<@U0APPROVE>" in text
    assert ACTION_RETRY not in _buttons(message)


def test_a_partial_result_lists_what_failed_and_offers_retry() -> None:
    failed = [_Failed("task", "Write <!here> docs", "Taiga said: <b>Forbidden</b>")]
    result = _Result(PLAN_ID, complete=False, created=_created(1, 1), failed=failed)

    message = result_blocks(result)
    text = _all_text(message)

    assert "partly applied" in text
    assert "Not created yet (1)" in text
    assert "Task Write &lt;!here&gt; docs: Taiga said: &lt;b&gt;Forbidden" in text
    assert _buttons(message)[ACTION_RETRY]["value"] == PLAN_ID
    assert "1 not created yet" in message.text


@pytest.mark.anyio
async def test_a_large_result_fits_and_is_accepted(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel("planning")
    failed = [_Failed("task", f"Task {i}", "Taiga was unavailable") for i in range(60)]
    result = _Result(PLAN_ID, complete=False, created=_created(40, 5), failed=failed)

    message = result_blocks(result)
    response = await slack_client.chat_postMessage(channel=channel, **message.as_kwargs())

    _assert_within_limits(message)
    assert response["ok"] is True
    assert "more items" in _all_text(message)


def test_a_result_still_being_applied_says_so_without_retry() -> None:
    result = _Result(PLAN_ID, complete=False, created=_created(1, 0))
    running = SimpleNamespace(**vars(result), state="executing")

    message = result_blocks(running)

    assert "being applied" in _all_text(message)
    assert ACTION_RETRY not in _buttons(message)


def test_rejected_expired_and_error_messages() -> None:
    rejected = rejected_blocks("U0REJECT")
    forged = rejected_blocks("<!channel>")
    expired = expired_blocks()
    error = error_blocks("Taiga refused: <!here> & co")

    assert "Rejected by <@U0REJECT>" in _all_text(rejected)
    assert "<!channel>" not in _all_text(forged)
    assert "expired" in _all_text(expired)
    assert "Taiga refused: &lt;!here&gt; &amp; co" in _all_text(error)
    assert "<!here>" not in error.text
    for message in (rejected, forged, expired, error):
        _assert_within_limits(message)
        assert _buttons(message) == {}


def test_an_error_after_approval_offers_retry_within_limits() -> None:
    message = error_blocks("Taiga is not answering right now.", retry_plan_id=PLAN_ID)

    _assert_within_limits(message)
    assert _buttons(message)[ACTION_RETRY]["value"] == PLAN_ID
    assert ACTION_RETRY not in _buttons(error_blocks("Taiga is not answering right now."))


def test_a_story_with_twenty_tasks_is_pickable_in_groups_of_ten() -> None:
    message = proposal_blocks(PLAN_ID, _proposal(2, 20), REQUESTER)

    _assert_within_limits(message)
    values = [
        option["value"]
        for block in message.blocks
        for element in [block.get("accessory") or {}, *block.get("elements", [])]
        if element.get("type") == "checkboxes"
        for option in element["options"]
    ]
    assert values == [v for i in (1, 2) for v in [str(i), *(f"{i}.{j}" for j in range(1, 21))]]


def test_the_full_plan_modal_shows_every_description_in_full_on_pages_slack_accepts() -> None:
    proposal = _proposal(30, 10, description="word " * 2000, task_subject="{j} x&y " * 20)
    proposal.stories[0].tasks[0].description = "the first task's whole description"
    picked = proposal.picking({"new-story-2"}, picked=False)

    count = len(full_plan_pages(picked))
    pages = [full_plan_view(PLAN_ID, 2, picked, page) for page in range(count)]
    text = "\n".join(_texts([b for page in pages for b in page["blocks"]]))

    assert len(pages) > 1
    for page in pages:
        assert validate_blocks(page["blocks"], max_blocks=100) == []
        assert page["private_metadata"] == f"{PLAN_ID}:2"
    assert text.count("word") == 30 * 2000
    assert "the first task's whole description" in text
    assert "*2. Story 2: make the login page remember the user*  auth  _left out" in text


def test_an_applied_result_offers_undo_next_to_retry_in_one_block() -> None:
    failed = [_Failed("task", "Write docs", "Taiga was unavailable")]
    partial = _Result(PLAN_ID, complete=False, created=_created(1, 1), failed=failed)
    done = _Result(PLAN_ID, complete=True, created=_created(1, 1))

    both = result_blocks(partial, undo_minutes=30)
    only_undo = result_blocks(done, undo_minutes=30)

    _assert_within_limits(both)
    assert [b["type"] for b in both.blocks].count("actions") == 1
    assert set(_buttons(both)) == {ACTION_RETRY, ACTION_UNDO}
    assert _buttons(only_undo)[ACTION_UNDO]["value"] == PLAN_ID
    assert "30 minutes" in json.dumps(_buttons(only_undo)[ACTION_UNDO]["confirm"])
    assert ACTION_UNDO not in _buttons(result_blocks(done))
    running = SimpleNamespace(**vars(done), state="executing")
    assert ACTION_UNDO not in _buttons(result_blocks(running, undo_minutes=30))


def test_an_undo_report_says_what_was_removed_and_kept_and_why_within_limits() -> None:
    def item(n: int, reason: str = "") -> UndoItem:
        return UndoItem(kind="story", action_key=f"story:s{n}", subject=f"Story <{n}>", ref=n,
                        reason=reason)  # fmt: skip

    report = UndoReport(
        plan_id=PLAN_ID, state="undo_partial",
        removed=[item(n) for n in range(300)],
        kept=[item(1000, "changed in Taiga since")],
        failed=[item(2000, "Taiga was unavailable")],
    )  # fmt: skip

    message = undo_blocks(report, undone_by="U0APPROVE")
    text = _all_text(message)

    _assert_within_limits(message)
    assert "Plan partly undone" in text and "300 items removed from Taiga, 1 kept" in text
    assert "story #1000 Story &lt;1000&gt;: changed in Taiga since" in text
    assert "Not removed yet (1)" in text and "more items" in text
    assert _buttons(message)[ACTION_UNDO]["text"]["text"] == "Retry undo"
    done = undo_blocks(report.model_copy(update={"failed": [], "state": "undone"}), undone_by=None)
    assert _buttons(done) == {} and "Plan undone" in _all_text(done)
