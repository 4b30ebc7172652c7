"""`python -m agent plan` applying the proposal (ask, --yes, --dry-run), `apply PLAN_ID` and
`undo PLAN_ID`, end to end against the fake Anthropic and fake Taiga with a temp-file SQLite
database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.peers.cli_env import MINUTES, WEB, Cli, plan, plan_turn
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG, FakeTaiga


@pytest.fixture(autouse=True)
def planned(fake_anthropic: FakeAnthropic) -> None:
    """Every run here plans the same 2 stories with 3 tasks (5 writes)."""
    fake_anthropic.script(plan_turn())


def written(fake: FakeTaiga) -> int:
    return len(fake.requests_to("POST", "/userstories*")) + len(fake.requests_to("POST", "/tasks*"))


def test_answering_yes_applies_the_plan_and_prints_links(
    minutes: Path, fake_taiga: FakeTaiga, cli: Cli
) -> None:
    run = cli(*plan(minutes), stdin="y\n")

    assert run.code == 0, run.err
    assert "Apply? [y/N]" in run.err
    story = next(s for s in fake_taiga.stories(PROJECT_ID) if s["subject"].startswith("As a coach"))
    task = next(t for t in fake_taiga.tasks(PROJECT_ID) if t["subject"] == "Render PDF")
    assert task["user_story"] == story["id"]
    assert "Created in Taiga:" in run.out
    assert f"#{story['ref']} As a coach, I can export a plan as PDF" in run.out
    assert f"{WEB}/project/{PROJECT_SLUG}/us/{story['ref']}" in run.out
    task_url = f"{WEB}/project/{PROJECT_SLUG}/task/{task['ref']}"
    assert f"     - #{task['ref']} Render PDF  {task_url}" in run.out
    assert f"{WEB}/project/{PROJECT_SLUG}/taskboard/sprint-6" in run.out
    assert written(fake_taiga) == 5


@pytest.mark.parametrize("answer", ["\n", "n\n", "nope\n", ""])
def test_anything_but_yes_writes_nothing(
    minutes: Path, fake_taiga: FakeTaiga, cli: Cli, answer: str
) -> None:
    run = cli(*plan(minutes), stdin=answer)

    assert run.code == 0
    assert "Nothing was written to Taiga." in run.err
    assert written(fake_taiga) == 0


def test_yes_skips_the_question(minutes: Path, fake_taiga: FakeTaiga, cli: Cli) -> None:
    run = cli(*plan("--yes", minutes), stdin="")

    assert run.code == 0
    assert "Apply?" not in run.err
    assert written(fake_taiga) == 5


def test_dry_run_never_applies(minutes: Path, fake_taiga: FakeTaiga, cli: Cli) -> None:
    run = cli(*plan("--dry-run", "--yes", minutes), stdin="y\n")

    assert run.code == 0
    assert "Apply?" not in run.err and "Created in Taiga" not in run.out
    assert written(fake_taiga) == 0


def test_minutes_from_stdin_are_not_applied_without_yes(
    minutes: Path, fake_taiga: FakeTaiga, cli: Cli
) -> None:
    run = cli(*plan("-"), stdin=MINUTES)

    assert run.code == 0
    assert "pass --yes" in run.err
    assert written(fake_taiga) == 0


def test_a_partial_apply_exits_1_and_apply_plan_id_creates_only_what_is_missing(
    minutes: Path, fake_taiga: FakeTaiga, cli: Cli
) -> None:
    fake_taiga.fail_next(500, method="POST", path="/tasks")

    run = cli(*plan("--yes", minutes))

    assert run.code == 1
    assert "Not created (1):" in run.out
    found = re.search(r"python -m agent apply ([0-9a-f]{32})", run.out)
    assert found is not None
    fake_taiga.clear_requests()

    again = cli("apply", found.group(1), "--json", "--quiet")

    assert again.code == 0
    result = json.loads(again.out)
    assert result["complete"] is True and len(result["created"]) == 5
    assert written(fake_taiga) == 1
    subjects = [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)]
    assert all(subjects.count(s) == 1 for s in ("Add export button", "Render PDF", "Send e-mail"))


def test_apply_of_an_unknown_plan_is_a_one_line_error(minutes: Path, cli: Cli) -> None:
    run = cli("apply", "0" * 32)

    assert run.code == 2
    assert run.err.startswith("error: No plan ")


def test_undo_plan_id_deletes_what_the_plan_created_and_keeps_what_changed(
    minutes: Path, fake_taiga: FakeTaiga, cli: Cli
) -> None:
    run = cli(*plan("--yes", minutes))
    found = re.search(r"python -m agent undo ([0-9a-f]{32})", run.out)
    assert run.code == 0 and found is not None
    reminders = next(s for s in fake_taiga.stories(PROJECT_ID) if "reminders" in s["subject"])
    fake_taiga.edit("story", reminders["id"], description="Changed by hand")

    undone = cli("undo", found.group(1))

    assert undone.code == 0, undone.err
    assert "Removed from Taiga (4):" in undone.out
    kept = f"  story #{reminders['ref']} As an athlete, I get reminders: changed in Taiga since"
    assert kept in undone.out
    subjects = [s["subject"] for s in fake_taiga.stories(PROJECT_ID)]
    assert "As an athlete, I get reminders" in subjects
    assert "As a coach, I can export a plan as PDF" not in subjects
    tasks = [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)]
    assert not {"Add export button", "Render PDF", "Send e-mail"} & set(tasks)
    again = cli("undo", found.group(1), "--json")
    assert again.code == 0 and json.loads(again.out)["state"] == "undone"
    assert len(fake_taiga.requests_to("DELETE", "*")) == 4


def test_undo_of_an_unknown_plan_is_a_one_line_error(minutes: Path, cli: Cli) -> None:
    run = cli("undo", "0" * 32)

    assert run.code == 2
    assert run.err.startswith("error: No plan ")
