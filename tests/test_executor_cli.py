"""`python -m agent plan` applying the proposal (ask, --yes, --dry-run) and `apply PLAN_ID`,
end to end against the fake Anthropic and fake Taiga with a temp-file SQLite database."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from agent.cli import main
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG, FakeTaiga

MINUTES = "Coaches export plans as PDF; athletes get reminders."
WEB = "https://taiga.example"
PLAN = ["plan", "--project", PROJECT_SLUG, "--sprint", "Sprint 6"]


@pytest.fixture
def minutes(
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
    monkeypatch.setenv("TAIGA_WEB_URL", WEB)
    monkeypatch.setenv("TAIGA_USERNAME", "alice")
    monkeypatch.setenv("TAIGA_PASSWORD", "alice123")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'planner.db'}")
    path = tmp_path / "minutes.txt"
    path.write_text(MINUTES)
    return path


def plan_turn() -> dict[str, object]:
    return message(
        text("2 stories with 3 tasks for Sprint 6."),
        tool_use(
            "taiga_create_user_story",
            {
                "subject": "As a coach, I can export a plan as PDF",
                "tasks": [{"subject": "Add export button"}, {"subject": "Render PDF"}],
            },
        ),
        tool_use(
            "taiga_create_user_story",
            {"subject": "As an athlete, I get reminders", "tasks": [{"subject": "Send e-mail"}]},
        ),
    )


def written(fake: FakeTaiga) -> int:
    return len(fake.requests_to("POST", "/userstories*")) + len(fake.requests_to("POST", "/tasks*"))


def test_answering_yes_applies_the_plan_and_prints_links(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(plan_turn())

    code = main([*PLAN, str(minutes)], stdin=io.StringIO("y\n"))

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Apply? [y/N]" in err
    story = next(s for s in fake_taiga.stories(PROJECT_ID) if s["subject"].startswith("As a coach"))
    task = next(t for t in fake_taiga.tasks(PROJECT_ID) if t["subject"] == "Render PDF")
    assert task["user_story"] == story["id"]
    assert "Created in Taiga:" in out
    assert f"#{story['ref']} As a coach, I can export a plan as PDF" in out
    assert f"{WEB}/project/{PROJECT_SLUG}/us/{story['ref']}" in out
    task_url = f"{WEB}/project/{PROJECT_SLUG}/task/{task['ref']}"
    assert f"     - #{task['ref']} Render PDF  {task_url}" in out
    assert f"{WEB}/project/{PROJECT_SLUG}/taskboard/sprint-6" in out
    assert written(fake_taiga) == 5


@pytest.mark.parametrize("answer", ["\n", "n\n", "nope\n", ""])
def test_anything_but_yes_writes_nothing(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
    answer: str,
) -> None:
    fake_anthropic.script(plan_turn())

    code = main([*PLAN, str(minutes)], stdin=io.StringIO(answer))

    _, err = capsys.readouterr()
    assert code == 0
    assert "Nothing was written to Taiga." in err
    assert written(fake_taiga) == 0


def test_yes_skips_the_question(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(plan_turn())

    code = main([*PLAN, "--yes", str(minutes)], stdin=io.StringIO(""))

    _, err = capsys.readouterr()
    assert code == 0
    assert "Apply?" not in err
    assert written(fake_taiga) == 5


def test_dry_run_never_applies(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(plan_turn())

    code = main([*PLAN, "--dry-run", "--yes", str(minutes)], stdin=io.StringIO("y\n"))

    out, err = capsys.readouterr()
    assert code == 0
    assert "Apply?" not in err and "Created in Taiga" not in out
    assert written(fake_taiga) == 0


def test_minutes_from_stdin_are_not_applied_without_yes(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(plan_turn())

    code = main([*PLAN, "-"], stdin=io.StringIO(MINUTES))

    _, err = capsys.readouterr()
    assert code == 0
    assert "pass --yes" in err
    assert written(fake_taiga) == 0


def test_a_partial_apply_exits_1_and_apply_plan_id_creates_only_what_is_missing(
    minutes: Path,
    fake_anthropic: FakeAnthropic,
    fake_taiga: FakeTaiga,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_anthropic.script(plan_turn())
    fake_taiga.fail_next(500, method="POST", path="/tasks")

    code = main([*PLAN, "--yes", str(minutes)])

    out, _ = capsys.readouterr()
    assert code == 1
    assert "Not created (1):" in out
    found = re.search(r"python -m agent apply ([0-9a-f]{32})", out)
    assert found is not None
    fake_taiga.clear_requests()

    again = main(["apply", found.group(1), "--json", "--quiet"])

    out, _ = capsys.readouterr()
    assert again == 0
    result = json.loads(out)
    assert result["complete"] is True and len(result["created"]) == 5
    assert written(fake_taiga) == 1
    subjects = [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)]
    assert all(subjects.count(s) == 1 for s in ("Add export button", "Render PDF", "Send e-mail"))


def test_apply_of_an_unknown_plan_is_a_one_line_error(
    minutes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["apply", "0" * 32])

    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: No plan ")
