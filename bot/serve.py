"""`bot.serve.run(settings)`: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP.

Either way one uvicorn server on PORT serves `/health` and `/agent/run`; in HTTP mode it also
receives Slack's signed requests at `POST /slack/events` (the same app as
`uvicorn bot.server:api`). In Socket Mode the Bolt app gets Slack's requests over the websocket
opened with the app-level token, and `/slack/events` is not needed.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from fastapi import FastAPI
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent.runtime import build_runtime
from agent.settings import Settings
from bot.app import SlackBot, build_bot, quiet_slack_loggers
from bot.server import create_api

logger = logging.getLogger(__name__)

HOST = "0.0.0.0"


def run(settings: Settings) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM)."""
    quiet_slack_loggers()
    asyncio.run(serve(settings))


async def serve(settings: Settings, *, host: str = HOST) -> None:
    runtime = build_runtime(settings)
    bot = build_bot(runtime)
    api = create_api(settings, runtime=runtime, slack=bot)
    bot.start()  # the recovery sweep: resumes applies a restart interrupted, expires proposals
    try:
        if settings.socket_mode:
            await serve_socket_mode(settings, bot, api, host=host)
        else:
            logger.info("HTTP mode: Slack requests at POST /slack/events on port %s", settings.port)
            await _uvicorn(api, host, settings.port).serve()
    finally:
        await bot.aclose()
        await runtime.aclose()


def _uvicorn(api: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(api, host=host, port=port, proxy_headers=True, log_config=None)
    return uvicorn.Server(config)


async def serve_socket_mode(
    settings: Settings,
    bot: SlackBot,
    api: FastAPI,
    *,
    host: str = HOST,
    listener: socket.socket | None = None,
    stop: asyncio.Event | None = None,
    connections_client: AsyncWebClient | None = None,
) -> None:
    """Connect to Slack over Socket Mode and serve the HTTP API on PORT (or on `listener`, a
    listening socket) until `stop` is set or the HTTP server exits. The port listens before
    the websocket connects. `connections_client` overrides the client that calls
    `apps.connections.open`."""
    sock = listener or socket.create_server((host, settings.port))
    handler = AsyncSocketModeHandler(
        bot.app,
        app_token=settings.slack_app_token.get_secret_value(),
        web_client=connections_client,
    )
    server = _uvicorn(api, host, sock.getsockname()[1])
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    await handler.connect_async()
    logger.info("Socket Mode connected; /health and /agent/run on port %s", server.config.port)
    waiting = asyncio.create_task((stop or asyncio.Event()).wait(), name="stop")
    try:
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        waiting.cancel()
        await asyncio.gather(serving, waiting, return_exceptions=True)
        await handler.close_async()
