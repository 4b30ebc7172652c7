"""`python -m agent plan` end to end against the fake Anthropic and fake Taiga servers."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from agent.proposal import Proposal
from tests.peers.cli_env import MINUTES, Cli, plan, plan_turn
from tests.peers.fake_anthropic import FakeAnthropic, message, text
from tests.peers.fake_taiga import FakeTaiga


def test_plan_prints_the_proposal_as_a_tree(
    minutes: Path, fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga, cli: Cli
) -> None:
    fake_anthropic.script(plan_turn("Sprint 7"))
    run = cli(*plan(minutes, sprint="Sprint 7"))
    assert run.code == 0, run.err
    start = date.today()  # the recorded sprints ended in 2024: a new one starts today
    assert f"Sprint: Sprint 7 (NEW, will be created, {start} → {start + timedelta(13)})" in run.out
    assert "  1. As a coach, I can export a plan as PDF  [export]" in run.out
    assert "     - Render PDF" in run.out
    assert "  2. As an athlete, I get reminders" in run.out
    assert "Summary: 2 stories with 3 tasks for Sprint 7." in run.out
    assert "Drafting the plan with Claude" in run.err  # progress goes to stderr
    assert MINUTES in fake_anthropic.requests[0].raw
    assert [r.method for r in fake_taiga.requests_to("POST", "/auth")] == ["POST"]
    assert fake_taiga.requests_to("POST", "/userstories*") == []  # nothing written


def test_plan_json_reads_stdin_and_round_trips(
    minutes: Path, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    fake_anthropic.script(plan_turn("Sprint 7"))
    monkeypatch.setattr("sys.stdin", io.StringIO(MINUTES))
    run = cli(*plan("--json", "--quiet", "-", project="1", sprint="sprint 7"))
    assert run.code == 0
    assert run.err == ""
    proposal = Proposal.model_validate(json.loads(run.out))
    assert [a.key for a in proposal.actions()][:3] == [
        "milestone",
        "story:new-story-1",
        "story:new-story-2",
    ]


def test_plan_with_an_auth_token_and_a_stopped_run_exits_1(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    monkeypatch.delenv("TAIGA_USERNAME")
    monkeypatch.delenv("TAIGA_PASSWORD")
    monkeypatch.setenv("TAIGA_AUTH_TOKEN", fake_taiga.login_tokens("alice")["auth_token"])
    fake_anthropic.script(message(text("Here is"), stop_reason="max_tokens"))
    run = cli(*plan(minutes))
    assert run.code == 1
    assert "! Planning stopped early: the model's answer was cut off" in run.out
    assert fake_taiga.requests_to("POST", "/auth") == []


@pytest.mark.parametrize(
    ("change", "argv_project", "expected"),
    [
        ({"ANTHROPIC_API_KEY": ""}, "1", "error: ANTHROPIC_API_KEY is not set"),
        ({"TAIGA_PASSWORD": ""}, "1", "error: Set TAIGA_AUTH_TOKEN, or TAIGA_USERNAME and"),
        (
            {"TAIGA_PASSWORD": "wrong"},
            "1",
            "error: Taiga did not accept that username and password.",
        ),
        ({}, "no-such-project", "error: Taiga: Project 'no-such-project' was not found"),
    ],
)
def test_plan_errors_are_one_line_with_exit_code_2(
    minutes: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    change: dict[str, str],
    argv_project: str,
    expected: str,
) -> None:
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    run = cli(*plan(minutes, project=argv_project))
    assert run.code == 2
    last = run.err.strip().splitlines()[-1]
    assert last.startswith(expected)
    assert "Traceback" not in run.err


def test_plan_with_missing_minutes_file_is_an_error(minutes: Path, cli: Cli) -> None:
    run = cli(*plan(minutes.parent / "nope.txt", project="1"))
    assert run.code == 2
    assert run.err.startswith("error: Cannot read the minutes from ")


def test_yes_refuses_a_plan_that_stopped_early_unless_partial_is_allowed(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    monkeypatch.setenv("AGENT_MAX_WRITE_CALLS", "1")  # the turn proposes two stories
    fake_anthropic.script(plan_turn("Sprint 6"))
    refused = cli(*plan("--yes", minutes))
    assert refused.code == 2
    assert refused.err.strip().splitlines()[-1] == (
        "error: Planning stopped early (the limit of 1 proposed writes was reached), so the plan "
        "may be incomplete and was not applied; nothing was written to Taiga. Pass "
        "--allow-partial to apply it anyway."
    )
    assert fake_taiga.requests_to("POST", "/userstories*") == []

    fake_anthropic.script(plan_turn("Sprint 6"))
    applied = cli(*plan("--yes", "--allow-partial", minutes))
    assert applied.code == 1, applied.err  # applied, but the plan itself stopped early
    assert len(fake_taiga.requests_to("POST", "/userstories")) == 1
