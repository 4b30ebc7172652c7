from __future__ import annotations

import re
from pathlib import Path

import pytest
from anthropic._data import DEPRECATED_MODELS  # the SDK's own list of models near end of life

from agent.settings import DEFAULT_MODEL, MissingSettingError, Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_documented_budgets() -> None:
    settings = Settings()
    assert settings.agent_deadline_seconds == 90
    assert settings.agent_max_steps == 10
    assert settings.agent_max_tool_calls == 25
    assert settings.agent_max_write_calls == 25
    assert settings.agent_max_repeated_calls == 2
    assert settings.port == 3000
    assert settings.database_url.get_secret_value() == "sqlite:///./taiga_planner.db"


def test_default_model_is_not_deprecated_by_the_installed_sdk() -> None:
    assert DEFAULT_MODEL not in DEPRECATED_MODELS
    assert "sonnet" in DEFAULT_MODEL


@pytest.mark.parametrize(
    "url", ["postgres://u@db/app", "postgresql://u@db/app", "postgresql+psycopg://u@db/app"]
)
def test_every_postgres_spelling_uses_psycopg(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert Settings().database_url.get_secret_value() == "postgresql+psycopg://u@db/app"


def test_environment_wins_over_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=4000\nAGENT_MAX_STEPS=3\n")
    monkeypatch.setenv("PORT", "5000")
    settings = Settings()
    assert settings.port == 5000
    assert settings.agent_max_steps == 3


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", "one, two,,three")
    assert [key.get_secret_value() for key in Settings().agent_api_keys] == ["one", "two", "three"]


def test_empty_values_fall_back_to_defaults(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ANTHROPIC_MODEL=\nANTHROPIC_BASE_URL=\n")
    settings = Settings()
    assert settings.anthropic_model == DEFAULT_MODEL
    assert settings.anthropic_base_url is None


def test_missing_setting_names_itself_and_where_to_get_it() -> None:
    with pytest.raises(MissingSettingError) as error:
        Settings().require("slack_bot_token")
    assert "SLACK_BOT_TOKEN" in str(error.value)
    assert "OAuth" in str(error.value)


def test_env_example_lists_every_setting_with_a_comment() -> None:
    example = (ROOT / ".env.example").read_text().splitlines()
    for name in Settings.model_fields:
        index = next(
            (i for i, line in enumerate(example) if re.match(rf"^{name.upper()}=", line)), None
        )
        assert index is not None, f"{name.upper()} is missing from .env.example"
        assert example[index - 1].startswith("#"), f"{name.upper()} has no comment"


def test_the_lease_defaults_and_a_heartbeat_that_would_let_it_lapse_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.plan_lease_seconds, settings.plan_heartbeat_seconds) == (30.0, 5.0)
    monkeypatch.setenv("PLAN_LEASE_SECONDS", "5")
    monkeypatch.setenv("PLAN_HEARTBEAT_SECONDS", "5")
    with pytest.raises(ValueError, match="PLAN_HEARTBEAT_SECONDS must be shorter"):
        Settings(_env_file=None)  # type: ignore[call-arg]
