"""`python -m agent plan` end to end against the fake Anthropic and fake Taiga servers."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.proposal import Proposal
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import FakeTaiga

MINUTES = "Sprint 7: coaches export plans as PDF; athletes get reminders."


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("TAIGA_AUTH_TOKEN", "AGENT_DEADLINE_SECONDS", "ANTHROPIC_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    monkeypatch.setenv("TAIGA_API_URL", fake_taiga.api_url)
    monkeypatch.setenv("TAIGA_USERNAME", "alice")
    monkeypatch.setenv("TAIGA_PASSWORD", "alice123")
    minutes = tmp_path / "minutes.txt"
    minutes.write_text(MINUTES)
    return minutes


def _plan_turn() -> dict[str, object]:
    return message(
        text("2 stories with 3 tasks for Sprint 7."),
        tool_use(
            "taiga_create_user_story",
            {
                "subject": "As a coach, I can export a plan as PDF",
                "tags": ["export"],
                "tasks": [{"subject": "Add export button"}, {"subject": "Render PDF"}],
            },
        ),
        tool_use(
            "taiga_create_user_story",
            {"subject": "As an athlete, I get reminders", "tasks": [{"subject": "Send e-mail"}]},
        ),
    )


def test_plan_prints_the_proposal_as_a_tree(
    env: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(_plan_turn())
    code = main(["plan", "--project", "alice-peer-client-test", "--sprint", "Sprint 7", str(env)])
    out, err = capsys.readouterr()
    assert code == 0, err
    start = date.today()  # the recorded sprints ended in 2024: a new one starts today
    assert f"Sprint: Sprint 7 (NEW, will be created, {start} → {start + timedelta(13)})" in out
    assert "  1. As a coach, I can export a plan as PDF  [export]" in out
    assert "     - Render PDF" in out
    assert "  2. As an athlete, I get reminders" in out
    assert "Summary: 2 stories with 3 tasks for Sprint 7." in out
    assert "Asking Claude" in err  # progress goes to stderr
    assert MINUTES in fake_anthropic.requests[0].raw
    assert [r.method for r in fake_taiga.requests_to("POST", "/auth")] == ["POST"]
    assert fake_taiga.requests_to("POST", "/userstories*") == []  # nothing written


def test_plan_json_reads_stdin_and_round_trips(
    env: Path,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(_plan_turn())
    monkeypatch.setattr("sys.stdin", io.StringIO(MINUTES))
    code = main(["plan", "--project", "1", "--sprint", "sprint 7", "--json", "--quiet", "-"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    proposal = Proposal.model_validate(json.loads(out))
    assert [a.key for a in proposal.actions()][:3] == [
        "milestone",
        "story:new-story-1",
        "story:new-story-2",
    ]


def test_plan_with_an_auth_token_and_a_stopped_run_exits_1(
    env: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TAIGA_USERNAME")
    monkeypatch.delenv("TAIGA_PASSWORD")
    monkeypatch.setenv("TAIGA_AUTH_TOKEN", fake_taiga.login_tokens("alice")["auth_token"])
    fake_anthropic.script(message(text("Here is"), stop_reason="max_tokens"))
    code = main(["plan", "--project", "alice-peer-client-test", "--sprint", "Sprint 6", str(env)])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "! Planning stopped early: the model's answer was cut off" in out
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
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    argv_project: str,
    expected: str,
) -> None:
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    code = main(["plan", "--project", argv_project, "--sprint", "Sprint 6", str(env)])
    _, err = capsys.readouterr()
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(expected)
    assert "Traceback" not in err


def test_plan_with_missing_minutes_file_is_an_error(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "--project", "1", "--sprint", "Sprint 6", str(env.parent / "nope.txt")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: Cannot read the minutes from ")
