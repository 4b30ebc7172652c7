"""One status message in a thread, updated in place at most about once a second.

Updates that arrive faster are coalesced: the latest text is shown when the interval has
passed (a flush is scheduled through the injected clock, so tests never sleep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from taiga.client import Clock

logger = logging.getLogger(__name__)

V = TypeVar("V")


class ThrottledStatus(Generic[V]):
    """Calls `push(value)` for the newest value, at most once per `interval` seconds."""

    def __init__(
        self, push: Callable[[V], Awaitable[None]], *, clock: Clock, interval: float = 1.0
    ) -> None:
        self._push = push
        self._clock = clock
        self._interval = interval
        self._last_push: float | None = None
        self._latest: V | None = None
        self._shown: V | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._pushing = False
        self._closed = False
        self._lock = asyncio.Lock()

    async def set(self, value: V) -> None:
        """Show `value` now if the interval has passed, else soon (the newest value wins)."""
        if self._closed:
            return
        self._latest = value
        if self._flusher is not None and not self._flusher.done():
            return  # a flush is already scheduled; it will show the newest text
        wait = self._wait()
        if wait <= 0:
            await self._flush()
        else:
            self._flusher = asyncio.create_task(self._flush_after(wait))

    async def close(self) -> None:
        """Stop updating; waits for an update already on its way (the caller then replaces
        the message with the final content)."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done() and not self._pushing:
            flusher.cancel()
        if flusher is not None:
            await asyncio.gather(flusher, return_exceptions=True)
        async with self._lock:
            pass

    def _wait(self) -> float:
        if self._last_push is None:
            return 0.0
        return self._last_push + self._interval - self._clock.now()

    async def _flush_after(self, wait: float) -> None:
        await self._clock.sleep(wait)
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            value = self._latest
            if self._closed or value is None or value == self._shown:
                return
            self._pushing = True
            try:
                await self._push(value)
                self._shown = value
            except Exception:  # a failed status update must not stop the plan
                logger.warning("status update failed", exc_info=True)
            finally:
                self._pushing = False
                self._last_push = self._clock.now()


class StatusMessage:
    """The thread's status message: a title and the steps so far, updated in place."""

    def __init__(
        self,
        slack: AsyncWebClient,
        *,
        channel: str,
        ts: str,
        title: str,
        clock: Clock,
        interval: float = 1.0,
        steps: Sequence[str] = (),
    ) -> None:
        self._slack = slack
        self.channel = channel
        self.ts = ts
        self.title = title
        self._steps: list[str] = list(steps)
        self._throttle: ThrottledStatus[int] = ThrottledStatus(
            self._push, clock=clock, interval=interval
        )

    @classmethod
    async def post(
        cls,
        slack: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        title: str,
        clock: Clock,
        interval: float = 1.0,
    ) -> StatusMessage:
        message = blocks.status_blocks([], title)
        response = await slack.chat_postMessage(
            channel=channel, thread_ts=thread_ts, **message.as_kwargs()
        )
        return cls(
            slack, channel=channel, ts=str(response["ts"]), title=title, clock=clock,
            interval=interval,
        )

    async def step(self, line: str) -> None:
        """Add a step (plain text; escaped when rendered)."""
        if line.strip():
            self._steps.append(line.strip())
            await self._throttle.set(len(self._steps))

    async def close(self) -> None:
        await self._throttle.close()

    async def _push(self, _count: int) -> None:
        message = blocks.status_blocks(self._steps, self.title)
        kwargs: dict[str, Any] = message.as_kwargs()
        await self._slack.chat_update(channel=self.channel, ts=self.ts, **kwargs)
