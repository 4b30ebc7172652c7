"""The checks every way of starting the bot makes (`python -m bot`, `uvicorn bot.server:api`):
the settings, then the database; each failure is one `StartupError` line naming the setting and
the fix. Slack's checks (`auth.test`, Socket Mode) are in `bot.slack_connection`."""

from __future__ import annotations

import errno
import os
import socket

import anyio.to_thread
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from agent.settings import (
    WHERE_TO_GET,
    MissingSettingError,
    Settings,
    invalid_setting_line,
)
from storage.crypto import EncryptionKeyError, TokenCipher
from storage.db import Database

SLACK_SETTINGS = ("slack_bot_token", "slack_signing_secret", "slack_app_token")
TOKEN_PREFIXES = {"slack_bot_token": "xoxb-", "slack_app_token": "xapp-"}
# What a Slack token is, by its prefix: named in the error, so the value itself never is.
TOKEN_KINDS = {
    "xoxb-": "bot token", "xapp-": "app-level token", "xoxp-": "user token",
    "xoxe-": "refresh token", "xoxc-": "browser token",
}


class StartupError(Exception):
    """Start-up cannot go on; the message is one line naming what to fix."""


def read_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise StartupError(invalid_setting_line(error)) from None


def serves_slack(settings: Settings) -> bool:
    """False only for an HTTP-API-only deployment: no Slack setting at all, and API keys set."""
    return any(getattr(settings, name) for name in SLACK_SETTINGS) or not settings.agent_api_keys


def required_to_run(settings: Settings) -> list[str]:
    """Socket Mode (the manifest's default) needs the app token, HTTP mode the signing secret;
    with neither set, ask for the app token. Without Slack, `/agent/run` needs only Claude."""
    if not serves_slack(settings):
        return ["anthropic_api_key"]
    names = ["slack_bot_token", "anthropic_api_key", "token_encryption_keys"]
    http_mode = bool(settings.slack_signing_secret) and not settings.socket_mode
    names.append("slack_signing_secret" if http_mode else "slack_app_token")
    return names


def check_settings(settings: Settings) -> None:
    """Every setting needed is there and looks right (no network call)."""
    try:
        settings.require(*required_to_run(settings))
    except MissingSettingError as error:
        raise StartupError(str(error)) from None
    for name, prefix in TOKEN_PREFIXES.items():
        value = getattr(settings, name).get_secret_value()
        if value and not value.startswith(prefix):
            kind = next((f"a {k}, " for p, k in TOKEN_KINDS.items() if value.startswith(p)), "")
            raise StartupError(
                f"{name.upper()} is {kind}not a {TOKEN_KINDS[prefix]} ({prefix}…): copy it from"
                f" {WHERE_TO_GET[name]}."
            )
    if settings.token_encryption_keys:
        try:
            TokenCipher(settings.token_encryption_keys)
        except EncryptionKeyError as error:
            raise StartupError(str(error)) from None


def listen(host: str, port: int) -> socket.socket:
    """The listening socket for PORT, bound before anything connects to Slack."""
    try:
        return socket.create_server((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "is already in use (is the bot already running?)"
        else:
            reason = f"cannot be opened ({error.strerror})"
        raise StartupError(
            f"PORT {port} {reason}; stop the other process or set PORT to a free port."
        ) from None


def open_database(settings: Settings) -> Database:
    try:
        database = Database(settings.database_url.get_secret_value())
    except (ArgumentError, ValueError) as error:
        raise StartupError(f"DATABASE_URL is not usable: {error}.") from None
    if database.dialect == "sqlite" and os.environ.get("DYNO"):
        database.dispose()
        raise StartupError(
            "DATABASE_URL is SQLite, but a dyno's disk is wiped on every restart: attach"
            " PostgreSQL and set DATABASE_URL to it (see the Procfile)."
        )
    return database


def migrate(db: Database) -> None:
    """Bring the schema to head (safe when several replicas start at once)."""
    try:
        db.migrate()
    except DBAPIError as error:
        raise StartupError(unreachable_database_line(db, error)) from None


async def migrate_database(db: Database) -> None:
    await anyio.to_thread.run_sync(migrate, db)


def unreachable_database_line(db: Database, error: DBAPIError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    url = make_url(db.url)
    if db.dialect == "sqlite":
        return (
            f"DATABASE_URL: cannot open the SQLite database {url.database} ({reason});"
            " check that its folder exists and is writable, or fix DATABASE_URL."
        )
    return (
        f"DATABASE_URL: cannot reach {db.dialect} at {url.host}:{url.port or 5432} ({reason});"
        " start the database or fix DATABASE_URL."
    )
