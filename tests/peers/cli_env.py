"""`python -m agent` run in-process against the fake Anthropic and fake Taiga peers.

Fixture `minutes`: the CLI's environment pointed at the fakes (Alice's password, a temp-file SQLite
database, links under WEB), run from an empty folder so no stray .env is read; it returns the
minutes file. Fixture `cli`: runs `agent.cli.main` and hands back the exit code and both streams.
`plan_turn` is the model's scripted answer: 2 stories with 3 tasks."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.cli import main
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import PROJECT_SLUG, FakeTaiga

MINUTES = "Coaches export plans as PDF; athletes get reminders."
WEB = "https://taiga.example"


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


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Cli:
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str | Path, stdin: str | None = None) -> CliRun:
        """`python -m agent *argv`, answering from `stdin` (None: the process's own stdin)."""
        code = main([str(a) for a in argv], stdin=None if stdin is None else io.StringIO(stdin))
        out, err = self.capsys.readouterr()
        return CliRun(code, out, err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def plan(*options: str | Path, sprint: str = "Sprint 6", project: str = PROJECT_SLUG) -> list[str]:
    """The argv of `plan --project PROJECT --sprint SPRINT *options`."""
    return ["plan", "--project", project, "--sprint", sprint, *map(str, options)]


def plan_turn(sprint: str = "Sprint 6") -> dict[str, object]:
    return message(
        text(f"2 stories with 3 tasks for {sprint}."),
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
