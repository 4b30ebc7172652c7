"""Slack at start-up: one `auth.test` with the bot token, and the Socket Mode connection.

A token Slack refuses stops start-up with one line naming the setting. When Slack cannot be
reached, each call is tried `ATTEMPTS` times, one log line per failed attempt, then start-up
stops with one line. Once connected, the Socket Mode client reconnects by itself; its log lines
carry no traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from agent.settings import WHERE_TO_GET, Settings
from bot.app import RedactSlackBodies
from bot.startup import StartupError

logger = logging.getLogger(__name__)

ATTEMPTS = 4
FIRST_RETRY_SECONDS = 1.0
CALL_TIMEOUT_SECONDS = 10
CONNECT_TIMEOUT_SECONDS = 30.0


async def check_bot_token(settings: Settings) -> AsyncSlackResponse:
    """`auth.test` with SLACK_BOT_TOKEN: Slack knows the token and the app is installed; its
    answer is the bot's identity (Bolt's authorization needs no second call)."""
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=CALL_TIMEOUT_SECONDS,
    )
    answer = await call_slack(client.auth_test, "slack_bot_token", settings)
    logger.info("Slack: signed in as %s in %s", answer.get("user"), answer.get("team"))
    return answer


async def call_slack(
    call: Callable[[], Awaitable[Any]], setting: str, settings: Settings
) -> Any:
    """Call Slack, retrying (bounded, quietly) only while Slack cannot be reached."""
    delay = FIRST_RETRY_SECONDS
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await call()
        except SlackApiError as error:
            raise StartupError(refused_line(setting, str(error.response.get("error")))) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = str(error) or type(error).__name__
            if attempt == ATTEMPTS:
                raise StartupError(
                    f"Slack is unreachable at {settings.slack_api_url} ({reason}) after"
                    f" {ATTEMPTS} attempts; check the network or SLACK_API_URL."
                ) from None
            logger.warning(
                "Slack is unreachable (%s); attempt %d of %d, retrying in %g s",
                reason, attempt, ATTEMPTS, delay,
            )
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def refused_line(setting: str, error: str) -> str:
    return (
        f"{setting.upper()} was refused by Slack ({error}): copy it again from"
        f" {WHERE_TO_GET[setting]}."
    )


class QuietReconnects(logging.Filter):
    """The Socket Mode client logs each failed (re)connection with a traceback: keep the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def socket_mode_logger() -> logging.Logger:
    quiet = logging.getLogger("slack_bolt.taiga_planner.socket_mode")
    if not quiet.filters:
        quiet.addFilter(RedactSlackBodies())
        quiet.addFilter(QuietReconnects())
    return quiet


class SocketModeConnection:
    """Slack's requests over the websocket opened with SLACK_APP_TOKEN."""

    def __init__(self, app: AsyncApp, settings: Settings) -> None:
        self.settings = settings
        self.handler = AsyncSocketModeHandler(
            app, app_token=settings.slack_app_token.get_secret_value(), logger=socket_mode_logger()
        )

    async def open(self) -> None:
        """Check the app token (`apps.connections.open`), then connect, within bounds."""
        client = self.handler.client
        opened = await call_slack(
            lambda: client.web_client.apps_connections_open(app_token=client.app_token),
            "slack_app_token",
            self.settings,
        )
        client.wss_uri = opened["url"]
        try:
            await asyncio.wait_for(self.handler.connect_async(), CONNECT_TIMEOUT_SECONDS)
        except TimeoutError:
            raise StartupError(
                f"Slack's Socket Mode websocket did not connect within"
                f" {CONNECT_TIMEOUT_SECONDS:g} s; check that the network allows wss:// to Slack."
            ) from None
        logger.info("Socket Mode connected")

    async def is_connected(self) -> bool:
        return bool(await self.handler.client.is_connected())

    async def close(self) -> None:
        await self.handler.close_async()
