"""Tool calls as a confused or manipulated model might send them, through the fake Anthropic
and the real SDK: known and unknown tool names, inputs of every shape, hostile subjects,
assignees and dates. The run ends with a proposal or a sentence in the plan's thread, the
draft never stays spinning, and nothing is written to Taiga before anyone approves."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.tools import TOOLS
from tests.faults.hostile import (
    FUZZ,
    Watch,
    assert_survived,
    hostile_text,
    json_values,
)
from tests.peers.fake_anthropic import message, text, tool_use
from tests.peers.slack_harness import Harness
from tests.peers.slack_setups import alice_plans_here

h = alice_plans_here
Json = dict[str, Any]
serial = itertools.count(1)

dates = st.one_of(st.dates().map(str), hostile_text, json_values)
tasks = st.lists(
    st.fixed_dictionaries({"subject": hostile_text},
                          optional={"description": hostile_text, "assignee": hostile_text,
                                    "due_date": dates, "extra": json_values}),
    max_size=3,
)
story_like = st.fixed_dictionaries(
    {"subject": st.one_of(hostile_text, json_values)},
    optional={"description": st.one_of(hostile_text, json_values), "tasks": tasks,
              "tags": st.lists(hostile_text, max_size=4), "assignee": hostile_text,
              "due_date": dates, "user_story": st.one_of(st.integers(), hostile_text),
              "name": hostile_text, "estimated_start": dates, "estimated_finish": dates,
              "milestone_id": json_values, "backlog": json_values},
)
tool_inputs = st.one_of(story_like, st.dictionaries(hostile_text, json_values, max_size=4))
tool_calls = st.lists(
    st.tuples(st.one_of(st.sampled_from(sorted(TOOLS)), hostile_text), tool_inputs),
    min_size=1, max_size=4,
)


class Model:
    """Scripted once for the whole test: each example's turns, then "Done." forever."""

    def __init__(self) -> None:
        self.turns: deque[Json] = deque()

    def __call__(self, _body: Json) -> Json:
        return self.turns.popleft() if self.turns else message(text("Done."))


@pytest.fixture
def model(served: Harness) -> Model:
    model = Model()
    served.anthropic.script(*[model] * 2000)
    return model


@pytest.mark.anyio
@FUZZ
@given(first=tool_calls, second=tool_calls)
async def test_generated_tool_calls_end_in_a_proposal_or_words(
    served: Harness, watch: Watch, model: Model, first: list[tuple[str, Json]],
    second: list[tuple[str, Json]],
) -> None:
    h = served
    model.turns.extend([turn(first), turn(second)])

    response, _ = await h.command(f"plan Sprint 6\nMinutes of meeting {next(serial)}.")

    await assert_survived(h, watch, response)
    assert {p.state for p in await h.plans()} <= {"proposed", "failed"}


def turn(calls: list[tuple[str, Json]]) -> Json:
    return message(text("Planned."), *(tool_use(name, dict(args)) for name, args in calls))
