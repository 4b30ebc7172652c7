"""Streamed model turns: a big plan is never lost to max_tokens, a stall, an error event or the
deadline. The fake Anthropic streams Anthropic's real SSE events; the real SDK reads them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from agent.budgets import Budgets, StopReason
from agent.loop import propose
from agent.planning.cuts import CONTINUE_AFTER_CUT
from agent.proposal import Proposal
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import (
    FakeAnthropic,
    Interrupted,
    message,
    overloaded,
    text,
    tool_results,
    tool_use,
)
from tests.test_agent_loop import MINUTES, OWNER, StubTaiga

BIG = Budgets(max_write_calls=25, max_tool_calls=25)


def _story(n: int) -> dict[str, Any]:
    """A story with five described tasks: a few hundred output tokens each."""
    return tool_use(
        "taiga_create_user_story",
        {
            "subject": f"Story {n}",
            "description": f"Why story {n} matters, and how we will know it is done. " * 4,
            "tasks": [
                {"subject": f"Task {n}.{k}", "description": f"Steps for task {n}.{k}. " * 3}
                for k in range(1, 6)
            ],
        },
    )


async def _propose(
    fake: FakeAnthropic,
    *,
    budgets: Budgets = BIG,
    stall_seconds: float = 60.0,
) -> Proposal:
    client = AsyncAnthropic(base_url=fake.base_url, api_key="test-key", max_retries=0)
    try:
        return await propose(
            anthropic=client,
            model="claude-test",
            taiga=StubTaiga(OWNER),  # type: ignore[arg-type]
            project_ref="alice-peer-client-test",
            sprint_name="Sprint 6",
            minutes=MINUTES,
            budgets=budgets,
            clock=FakeClock(),
            today=date(2024, 6, 3),
            stall_seconds=stall_seconds,
        )
    finally:
        await client.close()


def _continuation_of(first: int, last: int) -> Any:
    """The second turn: checks it was asked to continue after `first - 1` recorded calls, then
    proposes stories `first`..`last`."""

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
        sent_back = request["messages"][1]["content"]
        assert [b["input"]["subject"] for b in sent_back if b["type"] == "tool_use"] == [
            f"Story {n}" for n in range(1, first)
        ]
        results = tool_results(request)
        assert len(results) == first - 1 and not any(r.get("is_error") for r in results)
        assert request["messages"][2]["content"][-1] == {
            "type": "text",
            "text": CONTINUE_AFTER_CUT,
        }
        rest = (_story(n) for n in range(first, last + 1))
        return message(text("The rest of the sprint."), *rest)

    return answer


def _assert_whole_plan(proposal: Proposal) -> None:
    assert proposal.stopped is None
    assert proposal.warnings == []
    assert [s.subject for s in proposal.stories] == [f"Story {n}" for n in range(1, 21)]
    assert proposal.task_count == 100
    assert all(len(s.description) > 100 for s in proposal.stories)


@pytest.mark.anyio
@pytest.mark.parametrize("stop", ["max_tokens", "model_context_window_exceeded"])
async def test_a_twenty_by_five_plan_cut_at_its_length_limit_is_continued_whole(
    fake_anthropic: FakeAnthropic, stop: str
) -> None:
    # The first answer is cut in the middle of story 13's JSON.
    first = message(
        text("20 stories for Sprint 6."), *(_story(n) for n in range(1, 14)), stop_reason=stop
    )
    fake_anthropic.script(first, _continuation_of(13, 20))
    proposal = await _propose(fake_anthropic)
    _assert_whole_plan(proposal)
    assert len(fake_anthropic.requests) == 2
    assert all(body["stream"] is True for body in fake_anthropic.bodies)
    assert proposal.usage.model_calls == 2


@pytest.mark.anyio
async def test_a_cut_the_budget_cannot_continue_says_what_was_cut(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(
        message(*(_story(n) for n in range(1, 14)), stop_reason="max_tokens"),
    )
    proposal = await _propose(fake_anthropic, budgets=Budgets(max_steps=1, max_write_calls=25))
    assert proposal.stopped is StopReason.STEPS
    assert [s.subject for s in proposal.stories] == [f"Story {n}" for n in range(1, 13)]
    assert proposal.warnings == [
        "Planning stopped early: the limit of 1 model calls was reached. "
        "The plan below may be incomplete.",
        "Claude's answer reached its length limit (max_tokens) while writing the user story "
        '"Story 13"; its 12 finished calls are kept, that user story and anything after it are '
        "not in this plan.",
    ]
    assert len(fake_anthropic.requests) == 1


@pytest.mark.anyio
async def test_a_stream_that_stalls_keeps_what_finished_and_continues(
    fake_anthropic: FakeAnthropic,
) -> None:
    stalled = Interrupted(message(*(_story(n) for n in range(1, 21))), after_blocks=8)
    fake_anthropic.script(stalled, _continuation_of(9, 20))
    proposal = await _propose(fake_anthropic, stall_seconds=0.5)
    _assert_whole_plan(proposal)


@pytest.mark.anyio
async def test_an_error_event_mid_answer_keeps_what_finished_and_continues(
    fake_anthropic: FakeAnthropic,
) -> None:
    broken = Interrupted(
        message(*(_story(n) for n in range(1, 21))), after_blocks=5, error=overloaded()
    )
    fake_anthropic.script(broken, _continuation_of(6, 20))
    _assert_whole_plan(await _propose(fake_anthropic))


@pytest.mark.anyio
async def test_a_connection_dropped_mid_answer_keeps_what_finished_and_continues(
    fake_anthropic: FakeAnthropic,
) -> None:
    whole = message(*(_story(n) for n in range(1, 21)))
    dropped = Interrupted(whole, after_blocks=3, stall_seconds=0)  # the fake hangs up at once
    fake_anthropic.script(dropped, _continuation_of(4, 20))
    _assert_whole_plan(await _propose(fake_anthropic))


@pytest.mark.anyio
async def test_an_error_event_before_anything_finished_is_retried(
    fake_anthropic: FakeAnthropic,
) -> None:
    broken = Interrupted(message(_story(1)), after_blocks=0, error=overloaded())
    fake_anthropic.script(broken, message(text("20 stories."), *(_story(n) for n in range(1, 21))))
    _assert_whole_plan(await _propose(fake_anthropic))
    assert len(fake_anthropic.requests) == 2


@pytest.mark.anyio
async def test_the_deadline_mid_answer_keeps_the_finished_calls_and_says_what_was_cut(
    fake_anthropic: FakeAnthropic,
) -> None:
    stalled = Interrupted(message(*(_story(n) for n in range(1, 21))), after_blocks=6)
    fake_anthropic.script(stalled)
    budgets = Budgets(deadline_seconds=0.5, max_write_calls=25)
    proposal = await _propose(fake_anthropic, budgets=budgets)
    assert proposal.stopped is StopReason.DEADLINE
    assert [s.subject for s in proposal.stories] == [f"Story {n}" for n in range(1, 7)]
    assert proposal.warnings[-1] == (
        "the time limit was reached while Claude was still answering; its 6 finished calls are "
        "kept, anything it had not written yet is not in this plan."
    )
    assert len(fake_anthropic.requests) == 1


@pytest.mark.anyio
async def test_the_fake_streams_what_the_sdk_assembles_into_the_same_message(
    fake_anthropic: FakeAnthropic,
) -> None:
    scripted = message(text("Two stories."), _story(1), _story(2), output_tokens=777)
    fake_anthropic.script(scripted)
    client = AsyncAnthropic(base_url=fake_anthropic.base_url, api_key="k", max_retries=0)
    try:
        async with client.messages.stream(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "plan"}]
        ) as stream:
            final = await stream.get_final_message()
    finally:
        await client.close()
    assert [b.model_dump(exclude_none=True) for b in final.content] == scripted["content"]
    assert (final.stop_reason, final.usage.output_tokens) == ("tool_use", 777)
    assert final.usage.input_tokens == 1200
