"""What the HTTP host owns and its lifespan: the one start-up path of `python -m bot` and
`uvicorn bot.server:api`, and the clean shutdown.

Start-up: the settings checks, the database (migrated to head), Slack's `auth.test`, the
recovery sweep, and Socket Mode when SLACK_APP_TOKEN is set. A failure stops the server with
one line and a non-zero exit, and Ctrl-C / SIGTERM during start-up stops it at once (both in
`bot.asgi_startup`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from agent.runtime import Runtime, build_runtime
from agent.settings import Settings
from bot.app import SlackBot, build_bot
from bot.asgi_startup import until_stopped
from bot.slack_connection import SocketModeConnection, check_bot_token
from bot.startup import (
    StartupError,
    check_settings,
    migrate_database,
    open_database,
    serves_slack,
)

logger = logging.getLogger(__name__)


@dataclass
class HostState:
    """The clients the host serves with. Injected ones (tests) are the caller's to close, and
    the caller has made the start-up checks; owned ones are built and checked at start-up."""

    settings: Settings
    runtime: Runtime | None
    slack: SlackBot | None
    owns_runtime: bool
    owns_slack: bool
    request_timeout: float
    socket: SocketModeConnection | None = None

    def get_runtime(self) -> Runtime:
        if self.runtime is None:  # built on first use: importing the module connects nothing
            self.runtime = build_runtime(self.settings, db=open_database(self.settings))
        return self.runtime

    def get_bot(self) -> SlackBot:
        if self.slack is None:
            self.slack = build_bot(self.get_runtime())
        return self.slack

    async def start(self) -> None:
        if self.owns_runtime:
            check_settings(self.settings)
            await migrate_database(self.get_runtime().db)
        if not serves_slack(self.settings):
            logger.info("No Slack settings: serving only /agent/run and /health")
            return
        if self.owns_slack:
            identity = await check_bot_token(self.settings)
            self.get_bot().start(identity)  # and the recovery sweep: resumes interrupted applies
        if self.settings.socket_mode:
            self.socket = SocketModeConnection(self.get_bot().app, self.settings)
            await self.socket.open()
        else:
            logger.info("HTTP mode: Slack requests at POST /slack/events")

    async def aclose(self) -> None:
        if self.socket is not None:
            await self.socket.close()
            self.socket = None
        if self.owns_slack and self.slack is not None:
            await self.slack.aclose()
            self.slack = None
        if self.owns_runtime and self.runtime is not None:
            await self.runtime.aclose()
            self.runtime = None


def host_lifespan(state: HostState) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await until_stopped(state.start())
            yield
        finally:
            await state.aclose()

    return lifespan


def failing_lifespan(line: str) -> Callable[[FastAPI], Any]:
    """For an app whose settings could not even be read: start-up fails with `line`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        raise StartupError(line)
        yield  # pragma: no cover

    return lifespan
