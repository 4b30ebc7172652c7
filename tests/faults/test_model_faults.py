"""Model faults end in words: whatever Anthropic does (429, 529, 500, an error event, a stall, an
answer cut at max_tokens, invalid tool input, a model repeating itself), the Slack thread and the
`/agent/run` answer say what happened in a plain sentence, and nothing is written to Taiga.

Each fault goes through the real `anthropic` SDK to the fake Anthropic, which streams or fails
like the real API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.peers.fake_anthropic import (
    FakeAnthropic,
    Interrupted,
    Turn,
    message,
    overloaded,
    rate_limited,
    server_error,
    text,
    tool_use,
)
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.slack_harness import Harness, block_text, running_harness
from tests.test_agent_run_api import body_for, make_settings, open_api  # noqa: F401 (fixtures)

MINUTES = "Ship the CSV export; Bob builds the download button."
CLAUDE_DOWN = "Claude is not available right now; please try again in a few minutes."


def _story(subject: str) -> dict[str, Any]:
    return tool_use("taiga_create_user_story", {"subject": subject, "tasks": [{"subject": "Do"}]})


def _invalid_input(n: int) -> dict[str, Any]:
    return message(tool_use("taiga_create_user_story", {"subject": n, "tasks": "all of them"}))


_REPEAT = message(tool_use("taiga_list_user_stories", {"backlog": True}))


@dataclass(frozen=True)
class Fault:
    turns: Callable[[], list[Turn]]
    slack_says: str  # in the thread's final message
    api_status: int
    api_says: str  # in the API answer's detail
    settings: dict[str, Any] = field(default_factory=dict)


FAULTS = {
    "429 rate limit": Fault(
        lambda: [rate_limited(retry_after=1) for _ in range(5)],
        CLAUDE_DOWN, 502, "Claude API error 429: Number of request tokens",
    ),
    "529 overloaded": Fault(
        lambda: [overloaded() for _ in range(5)],
        CLAUDE_DOWN, 502, "Claude API error 529: Overloaded",
    ),
    "500 server error": Fault(
        lambda: [server_error() for _ in range(5)],
        CLAUDE_DOWN, 502, "Claude API error 500: Internal server error",
    ),
    "overloaded mid-answer": Fault(
        lambda: [
            Interrupted(message(_story("Export")), after_blocks=0, error=overloaded())
            for _ in range(5)
        ],
        CLAUDE_DOWN, 502, "Claude broke off its answer (overloaded_error): Overloaded",
    ),
    "timeout": Fault(
        lambda: [Interrupted(message(_story("Export")), after_blocks=0, stall_seconds=10)],
        "planning stopped early (the time limit of 1 s was reached)",
        504, "Planning stopped early (the time limit of 1 s was reached)",
        {"agent_deadline_seconds": 1},
    ),
    "max_tokens cut": Fault(
        lambda: [message(text("Here is the plan."), _story("Export"), stop_reason="max_tokens")],
        "its length limit (max_tokens) while writing the user story",
        409, "Planning stopped early (the model's answer was cut off at its length limit)",
    ),
    "invalid tool input": Fault(
        lambda: [_invalid_input(1), _invalid_input(2)],
        "Claude's last tool call was refused: Invalid input for taiga_create_user_story: "
        "subject: Input should be a valid string",
        409, "Planning stopped early (the limit of 2 model calls was reached)",
        {"agent_max_steps": 2},
    ),
    "a model repeating itself": Fault(
        lambda: [_REPEAT, _REPEAT, _REPEAT],
        "the model repeated the same call more than 2 times",
        409, "Planning stopped early (the model repeated the same call more than 2 times)",
    ),
}


def _nothing_written(taiga: FakeTaiga) -> None:
    for path in ("/userstories*", "/tasks*", "/milestones*"):
        assert taiga.requests_to("POST", path) == []
        assert taiga.requests_to("PATCH", path) == []


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_a_model_fault_ends_in_words_in_the_thread(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
    fault: Fault,
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, **fault.settings
    ) as h:
        await h.link(h.alice, "alice")
        await h.set_project()
        h.anthropic.script(*fault.turns())

        await h.command(f"plan Sprint 6\n{MINUTES}")

        final = await _final_message(h, fault.slack_says)
        await h.settle()
        assert "Traceback" not in block_text(final)
        assert not any("Traceback" in str(call.params) for call in h.slack.calls())
        _nothing_written(h.taiga)


async def _final_message(h: Harness, words: str) -> dict[str, Any]:
    return await h.wait_update(lambda p: words in block_text(p).replace("\n", " "))


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_a_model_fault_ends_in_words_in_the_api_answer(
    open_api: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
    fault: Fault,
) -> None:
    api = await open_api(**fault.settings)
    fake_anthropic.script(*fault.turns())

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == fault.api_status, response.text
    assert fault.api_says in response.json()["detail"]
    assert "Traceback" not in response.text
    _nothing_written(fake_taiga)
