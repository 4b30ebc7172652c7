"""A background updater for one Slack message: the producer hands it the latest state and
moves on; the updater sends at most one update per interval, always the newest state.

A 429 from Slack is waited out (its `Retry-After`, through the injected clock) in the
updater's own task, so whoever produces the progress — a Taiga write — never waits for Slack.
States that arrive meanwhile are coalesced into the next update."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from taiga.client import Clock

logger = logging.getLogger(__name__)

V = TypeVar("V")
R = TypeVar("R")
DEFAULT_RETRY_AFTER = 1.0
MAX_RATE_LIMITED_TRIES = 5


def progress_client(slack: AsyncWebClient) -> AsyncWebClient:
    """`slack` without its 429 retry handler: the updater waits out a 429 itself, so the
    retry is of the newest state, not of the one Slack refused."""
    handlers = [
        h for h in slack.retry_handlers if not isinstance(h, AsyncRateLimitErrorRetryHandler)
    ]
    return AsyncWebClient(
        token=slack.token, base_url=slack.base_url, timeout=slack.timeout, ssl=slack.ssl,
        proxy=slack.proxy, session=slack.session, trust_env_in_session=slack.trust_env_in_session,
        headers=slack.headers, logger=slack.logger, retry_handlers=handlers,
    )


def retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asked us to wait (HTTP 429), else None."""
    if error.response.status_code != 429:
        return None
    header = error.response.headers.get("Retry-After") or error.response.headers.get(
        "retry-after"
    )
    try:
        return max(0.0, float(header)) if header is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


async def honouring_retry_after(call: Callable[[], Awaitable[R]], clock: Clock) -> R:
    """`call()`, waiting out up to MAX_RATE_LIMITED_TRIES 429s as Slack asks."""
    for _ in range(MAX_RATE_LIMITED_TRIES - 1):
        try:
            return await call()
        except SlackApiError as error:
            wait = retry_after(error)
            if wait is None:
                raise
            await clock.sleep(wait)
    return await call()


class CoalescingUpdater(Generic[V]):
    """Sends the newest offered state through `send`, at most once per `interval` seconds,
    in its own task. `send` returning normally means the state is shown."""

    def __init__(
        self, send: Callable[[V], Awaitable[None]], *, clock: Clock, interval: float = 1.0
    ) -> None:
        self._send = send
        self._clock = clock
        self._interval = interval
        self._latest: V | None = None
        self._pending = False
        self._last_sent: float | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def offer(self, state: V) -> None:
        """Make `state` the next to show; never waits."""
        if self._closing:
            return
        self._latest = state
        self._pending = True
        if self._task is None or self._task.done():  # the task ends whenever all is shown
            self._task = asyncio.create_task(self._run(), name="slack-progress-updater")

    async def close(self) -> None:
        """Stop: an update on its way finishes, a pending one is dropped (the caller sends the
        final state), and the interval since the last update is kept."""
        self._closing = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._clock.sleep(self._until_next())

    def _until_next(self) -> float:
        if self._last_sent is None:
            return 0.0
        return max(0.0, self._last_sent + self._interval - self._clock.now())

    async def _run(self) -> None:
        while self._pending and not self._closing:
            await self._clock.sleep(self._until_next())
            if not self._closing:
                await self._send_latest()

    async def _send_latest(self) -> None:
        self._pending = False
        state = self._latest
        assert state is not None
        try:
            await self._send(state)
        except SlackApiError as error:
            wait = retry_after(error)
            if wait is None:
                logger.warning("progress update refused: %s", error.response.get("error"))
                return
            self._pending = True  # shown later: the newest state by then
            await self._clock.sleep(wait)
        except Exception:  # progress is cosmetic: a failed update must not stop the plan
            logger.warning("progress update failed", exc_info=True)
        finally:
            self._last_sent = self._clock.now()
