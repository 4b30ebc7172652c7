"""`python -m bot run`: serve the same app as `uvicorn bot.server:api` on PORT, after binding the
port (one line when it is taken) and with a clean exit on Ctrl-C / SIGTERM at any moment.

The app's lifespan does the rest (`bot.lifespan`): settings, database, Slack's token, the
recovery sweep, and Socket Mode when SLACK_APP_TOKEN is set (in HTTP mode Slack's signed
requests arrive at `POST /slack/events`). `/health` and `/agent/run` are served either way.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from agent.settings import Settings
from bot.app import quiet_slack_loggers
from bot.server import create_api
from bot.startup import listen

HOST = "0.0.0.0"


def run(settings: Settings) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt) or SIGTERM (exit 0); a start-up failure exits 3."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
    quiet_slack_loggers()
    sock = listen(HOST, settings.port)
    config = uvicorn.Config(
        create_api(settings), host=HOST, port=settings.port, proxy_headers=True,
        log_config=None, lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def _exit_cleanly(_sig: int, _frame: FrameType | None) -> None:
    """uvicorn shuts down on SIGTERM, then raises it again with this handler in place."""
    raise SystemExit(0)
