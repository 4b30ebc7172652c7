from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.settings import Settings
from bot.__main__ import main
from bot.envfile import ask_first_run_questions, ask_for_missing, create_env_file
from storage.crypto import TokenCipher, generate_key
from storage.db import Database
from storage.repositories import StoredTokens, get_link, save_link

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_keygen_prints_a_key_the_cipher_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    key = capsys.readouterr().out.strip()
    assert TokenCipher([key]).decrypt(TokenCipher([key]).encrypt("x")) == "x"


def test_rotate_keys_lets_the_old_key_be_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = generate_key(), generate_key()
    url = f"sqlite:///{tmp_path / 'planner.db'}"
    database = Database(url)
    database.migrate()
    database.run_sync(
        lambda session: save_link(
            session,
            cipher=TokenCipher([old]),
            team_id="T1",
            user_id="U1",
            taiga_user_id=6,
            taiga_username="alice",
            tokens=StoredTokens(auth_token="access-secret", refresh_token="refresh-secret"),
        )
    )
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", f"{new},{old}")

    assert main(["rotate-keys"]) == 0
    assert "Re-encrypted 1" in capsys.readouterr().out

    link = database.run_sync(
        lambda session: get_link(session, cipher=TokenCipher([new]), team_id="T1", user_id="U1")
    )
    database.dispose()
    assert link is not None
    assert link.tokens == StoredTokens("access-secret", "refresh-secret")


def test_rotate_keys_without_keys_names_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rotate-keys"]) == 2
    assert "TOKEN_ENCRYPTION_KEYS" in capsys.readouterr().err


def test_first_run_writes_env_with_a_generated_key(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    assert create_env_file(env, ROOT / ".env.example")
    keys = [line for line in env.read_text().splitlines() if line.startswith("TOKEN_ENCRYPTION_")]
    assert len(keys) == 1
    TokenCipher([keys[0].split("=", 1)[1]])  # a valid Fernet key
    assert [key.get_secret_value() for key in Settings().token_encryption_keys] == [
        keys[0].split("=", 1)[1]
    ]
    assert not create_env_file(env, ROOT / ".env.example"), "an existing .env is never replaced"


def test_env_written_on_first_run_and_by_the_prompts_is_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    first_run = tmp_path / "first" / ".env"
    first_run.parent.mkdir()
    assert create_env_file(first_run, ROOT / ".env.example")
    prompted = tmp_path / "prompted" / ".env"
    prompted.parent.mkdir()
    ask_for_missing(prompted, {"SLACK_BOT_TOKEN": ""}, ask=lambda _prompt: "xoxb-1")
    assert stat.S_IMODE(first_run.stat().st_mode) == 0o600
    assert stat.S_IMODE(prompted.stat().st_mode) == 0o600
    assert prompted.read_text() == "SLACK_BOT_TOKEN=xoxb-1\n"


def test_missing_values_asked_on_a_terminal_are_saved(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    create_env_file(env, ROOT / ".env.example")
    answers = {"SLACK_BOT_TOKEN (Slack app): ": "xoxb-1", "ANTHROPIC_API_KEY: ": ""}
    filled = ask_for_missing(
        env, {"SLACK_BOT_TOKEN": "Slack app", "ANTHROPIC_API_KEY": ""}, ask=answers.__getitem__
    )
    assert filled == ["SLACK_BOT_TOKEN"]
    assert Settings().slack_bot_token.get_secret_value() == "xoxb-1"
    assert Settings().anthropic_api_key.get_secret_value() == ""


def test_run_without_a_terminal_stops_with_one_line_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "SLACK_BOT_TOKEN is not set" in err


def test_with_neither_slack_mode_configured_socket_mode_is_asked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-1")
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", generate_key())
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "SLACK_APP_TOKEN is not set" in err and "SLACK_SIGNING_SECRET" in err


def test_first_run_says_where_the_slack_app_comes_from_and_offers_http_mode(
    tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    create_env_file(env, ROOT / ".env.example")
    asked: list[str] = []
    said: list[str] = []
    answers = iter(["http", "xoxb-1", "", "s3cret"])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    assert ask_first_run_questions(env, Settings(), ask=ask, say=said.append)

    intro = said[0]
    assert "manifest.yml" in intro and "README.md#create-the-slack-app-one-paste" in intro
    assert "hidden" in intro and "press Enter to skip" in intro
    assert "[socket/http; Enter: socket]" in asked[0]
    assert [p.split(" ")[0] for p in asked[1:]] == [
        "SLACK_BOT_TOKEN", "ANTHROPIC_API_KEY", "SLACK_SIGNING_SECRET"
    ]
    assert said[-1] == f"Saved SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET to {env}."
    settings = Settings()
    assert settings.slack_signing_secret.get_secret_value() == "s3cret"
    assert not settings.socket_mode


def test_first_run_asks_for_the_app_token_when_socket_mode_is_chosen(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    create_env_file(env, ROOT / ".env.example")
    answers = iter(["", "xoxb-1", "sk-1", "xapp-1"])  # Enter: Socket Mode, the default
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    ask_first_run_questions(env, Settings(), ask=ask, say=lambda _line: None)

    assert asked[-1].startswith("SLACK_APP_TOKEN (")
    assert Settings().socket_mode
