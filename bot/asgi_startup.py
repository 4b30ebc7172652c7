"""How start-up talks to the ASGI server process (uvicorn, for both entry points): Ctrl-C /
SIGTERM cut a start-up short at once, and a `StartupError` reaches the person as one line."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Awaitable
from types import FrameType
from typing import Any

from bot.startup import StartupError

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def until_stopped(start: Awaitable[None]) -> None:
    """Run `start`, cut short by Ctrl-C / SIGTERM: the server's own handler still runs (so
    it shuts down, closing what was opened), and start-up ends at once instead of finishing
    its retries first."""
    task = asyncio.ensure_future(start)
    if threading.current_thread() is not threading.main_thread():
        await task
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stop(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(task.cancel)
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled() or _current_task_cancelling():
            raise
        logger.info("Stopped during start-up")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


class StartupLine:
    """ASGI middleware: a `StartupError` from the lifespan is printed as its one line (instead
    of a traceback) and the server's generic "Application startup failed" is dropped; the
    server then exits non-zero (uvicorn: 3)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def hold_failure(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except StartupError as error:
            logging.getLogger("uvicorn.error").addFilter(_drop_generic_failure)
            print(f"error: {error}", file=sys.stderr, flush=True)  # as `python -m bot` says it
            await send({"type": "lifespan.startup.failed", "message": ""})
        except BaseException:
            for message in held:
                await send(message)
            raise


def _drop_generic_failure(record: logging.LogRecord) -> bool:
    return record.getMessage() != "Application startup failed. Exiting."
