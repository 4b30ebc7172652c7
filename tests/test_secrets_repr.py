"""No secret setting shows in `repr()` or `str()` of the objects that hold the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.runtime import Runtime, build_runtime
from agent.settings import Settings
from bot.app import SlackBot, build_bot
from storage.crypto import generate_key

FERNET_KEYS = [generate_key(), generate_key()]
DB_PASSWORD = "db-password-must-not-show"
SECRETS = {
    "slack_bot_token": "xoxb-bot-token-must-not-show",
    "slack_signing_secret": "signing-secret-must-not-show",
    "slack_app_token": "xapp-app-token-must-not-show",
    "anthropic_api_key": "sk-ant-api-key-must-not-show",
    "agent_api_keys": "agent-api-key-must-not-show",
}


def _settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"postgresql://planner:{DB_PASSWORD}@db.example.test/planner",
        token_encryption_keys=",".join(FERNET_KEYS),
        **SECRETS,
    )


def _assert_no_secret_shows(holder: object) -> None:
    for shown in (repr(holder), str(holder)):
        for secret in [*SECRETS.values(), *FERNET_KEYS, DB_PASSWORD]:
            assert secret not in shown, f"{secret!r} shows in {type(holder).__name__}"


@pytest.fixture
async def bot() -> AsyncIterator[SlackBot]:
    runtime = build_runtime(_settings())
    bot = build_bot(runtime)
    yield bot
    await bot.aclose()
    await runtime.aclose()


def test_settings_show_no_secret_but_the_database_it_points_at() -> None:
    settings = _settings()
    _assert_no_secret_shows(settings)
    assert "postgresql+psycopg://planner:***@db.example.test/planner" in repr(settings)


def test_secrets_are_still_handed_over_whole() -> None:
    settings = _settings()
    assert settings.slack_bot_token.get_secret_value() == SECRETS["slack_bot_token"]
    assert [key.get_secret_value() for key in settings.token_encryption_keys] == FERNET_KEYS
    assert settings.database_url.get_secret_value() == (
        f"postgresql+psycopg://planner:{DB_PASSWORD}@db.example.test/planner"
    )


@pytest.mark.anyio
async def test_runtime_services_and_bot_show_no_secret(bot: SlackBot) -> None:
    runtime: Runtime = bot.services.runtime
    for holder in (runtime, runtime.cipher, runtime.refresher, bot.services, bot):
        _assert_no_secret_shows(holder)
