"""Builds the one Bolt `AsyncApp` (HTTP and Socket Mode share it) and registers listeners.

Building makes no network call: the bot's identity (`auth.test`) is asked once, by `start()` or
the first request (`bot.authorization`), and request verification (the signing secret) stays on
for HTTP requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import (
    warning_client_prioritized_and_token_skipped,
    warning_token_skipped,
)
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from agent.errors import SOMETHING_WENT_WRONG
from agent.runtime import Runtime
from agent.settings import Settings
from bot.authorization import BotIdentity, bolt_authorize
from bot.listeners import register_listeners
from bot.middleware import attach_services
from bot.services.core import Services
from bot.services.errors import log_failure
from bot.services.recovery import RecoverySweep
from bot.slack_requests import readable, refuse_unreadable
from storage.models import utcnow

logger = logging.getLogger(__name__)

# Slack's SDK logs request and response bodies at DEBUG; a login form carries a password.
SLACK_LOGGERS = ("slack_bolt", "slack_sdk")


def quiet_slack_loggers() -> None:
    """Keep Slack's loggers at INFO or above, whatever the root level is."""
    for name in SLACK_LOGGERS:
        slack_logger = logging.getLogger(name)
        if slack_logger.getEffectiveLevel() < logging.INFO:
            slack_logger.setLevel(logging.INFO)


class RedactSlackBodies(logging.Filter):
    """Bolt logs a rejected request's body at INFO ("Invalid request signature detected (…,
    body: …)"), and a stale login form carries a password: cut every message at "body:".

    It also drops Bolt's warnings that SLACK_BOT_TOKEN is unused: we hand Bolt a configured
    client and our own `authorize` on purpose, and Bolt reads the variable regardless."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in (warning_client_prioritized_and_token_skipped(), warning_token_skipped()):
            return False
        head, found, _ = message.partition("body:")
        if found:
            record.msg, record.args = f"{head}body: [redacted])", None
        return True


def bolt_logger() -> logging.Logger:
    """The base logger of our Bolt app; Bolt copies its filters to the loggers it creates."""
    base = logging.getLogger("slack_bolt.taiga_planner")
    if not any(isinstance(f, RedactSlackBodies) for f in base.filters):
        base.addFilter(RedactSlackBodies())
    return base


def build_slack_client(settings: Settings) -> AsyncWebClient:
    """The bot's Web API client: SLACK_API_URL, retries on connection errors and on 429."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value() or None,
        base_url=settings.slack_api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(services: Services, identity: BotIdentity) -> AsyncApp:
    quiet_slack_loggers()
    app = AsyncApp(
        name="taiga-planner",
        client=services.slack,
        authorize=bolt_authorize(identity),
        signing_secret=services.settings.slack_signing_secret.get_secret_value(),
        request_verification_enabled=True,
        # Listeners only ack and hand work to `Services.spawn`, so Bolt may finish them before
        # answering: no untracked Bolt task outlives a request, and shutdown drains everything.
        process_before_response=True,
        logger=bolt_logger(),
    )
    app.use(attach_services(services))
    app.error(on_error)
    register_listeners(app)
    return app


async def on_error(error: Exception, body: dict[str, Any], respond: Any = None) -> None:
    """The app-wide error handler: log (type and message, no payload), tell plainly."""
    log_failure(f"listener failed ({body.get('type', 'request')})", error)
    if respond is not None and body.get("response_url"):
        try:
            await respond(text=SOMETHING_WENT_WRONG, response_type="ephemeral",
                          replace_original=False)
        except Exception as reply_error:
            log_failure("could not report the failure", reply_error)


@dataclass(eq=False)
class SlackBot:
    """The Bolt app, the services its listeners use, and the recovery sweep (started by
    `start()`, which whoever serves the bot calls; tests run its rounds themselves)."""

    app: AsyncApp
    services: Services
    recovery: RecoverySweep
    identity: BotIdentity

    def start(self, identity: AsyncSlackResponse | None = None) -> None:
        """Serve: `identity` is the start-up check's `auth.test` answer (else asked now)."""
        # One connection pool for every Web API call (Bolt's per-request clients share the
        # session); without one slack_sdk opens a new connection, TLS included, per call.
        self.services.slack.session = aiohttp.ClientSession()
        self.recovery.start()
        if identity is not None:
            self.identity.learn(identity)
        else:
            self.services.spawn_unbounded(self.identity.warm(), name="auth.test")

    async def aclose(self) -> None:
        await self.recovery.aclose()
        await self.services.cancel_all()
        session, self.services.slack.session = self.services.slack.session, None
        if session is not None:
            await session.close()


def build_bot(
    runtime: Runtime,
    *,
    slack: AsyncWebClient | None = None,
    now: Callable[[], datetime] = utcnow,
    status_interval: float = 1.0,
) -> SlackBot:
    services = Services(
        runtime=runtime,
        slack=slack or build_slack_client(runtime.settings),
        now=now,
        status_interval=status_interval,
    )
    identity = BotIdentity(services.slack)
    return SlackBot(
        app=build_app(services, identity),
        services=services,
        recovery=RecoverySweep(services),
        identity=identity,
    )


def mount_slack_events(api: FastAPI, get_bot: Callable[[], SlackBot]) -> None:
    """`POST /slack/events`: Slack's signed HTTP requests into the Bolt app (built on first
    use by `get_bot`, so importing the server connects nothing); a body the app cannot read
    is refused in words first (`bot.slack_requests`)."""
    handlers: dict[int, AsyncSlackRequestHandler] = {}

    @api.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        bot = get_bot()
        body = await request.body()
        if not readable(body, request.headers.get("content-type")):
            secret = bot.services.settings.slack_signing_secret.get_secret_value()
            return refuse_unreadable(body, request.headers, secret)
        handler = handlers.get(id(bot.app))
        if handler is None:
            handler = handlers[id(bot.app)] = AsyncSlackRequestHandler(bot.app)
        return await handler.handle(request)
