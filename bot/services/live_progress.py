"""The steps of drafting, revising or applying a plan, shown live in its thread: streamed as
Slack's AI apps show them where Slack allows it, else in a status message updated in place.

Steps go to a background updater (at most one update a second, always the newest state,
429s waited out there), so a Taiga write never waits for Slack. When Slack refuses to stream
— at the start or half-way — the same steps continue in a status message: none is lost."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from agent.progress import Step, Steps
from bot.blocks.kit import SlackMessage
from bot.services.core import Services
from bot.services.status import StatusMessage
from bot.services.streaming import Recipient, StepStream, StreamingRefused
from bot.services.updater import CoalescingUpdater, honouring_retry_after, progress_client
from taiga.client import Clock

logger = logging.getLogger(__name__)


class LiveProgress:
    """One plan's progress in its thread.

    `recipient` (the person who asked, and their team) turns streaming on. `status_ts` is the
    plan's own message: the steps are shown there when not streaming (else a message is
    posted), the final message always ends there, and while streaming `announce` replaces it
    once (an approved proposal loses its buttons). Without `status_ts` the final message ends
    the steps' message (a proposal's buttons arrive with chat.stopStream)."""

    def __init__(
        self,
        slack: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        title: str,
        clock: Clock,
        interval: float = 1.0,
        recipient: Recipient | None = None,
        status_ts: str | None = None,
        steps: Sequence[Step] = (),
        announce: SlackMessage | None = None,
    ) -> None:
        self._slack = progress_client(slack)
        self._clock = clock
        self._thread_ts = thread_ts
        self._steps = Steps(tuple(steps))
        self._status = StatusMessage(self._slack, channel=channel, title=title, ts=status_ts)
        self._stream = (
            StepStream(self._slack, channel=channel, thread_ts=thread_ts, recipient=recipient)
            if recipient is not None
            else None
        )
        self._home_ts = status_ts
        self._announce = announce if status_ts is not None else None
        self._updater: CoalescingUpdater[tuple[Step, ...]] = CoalescingUpdater(
            self._send, clock=clock, interval=interval
        )

    @property
    def ts(self) -> str | None:
        """The message that shows the steps (None until something is shown)."""
        if self._stream is not None:
            return self._stream.ts
        return self._status.ts

    @property
    def title(self) -> str:
        return self._status.title

    async def step(self, step: Step) -> None:
        """The progress callback: record `step`; it is shown soon, in the background."""
        self._steps.update(step)
        self._updater.offer(self._steps.snapshot())

    async def show_now(self, step: Step) -> str:
        """Show `step` at once, before any other, and return the message's ts (a plan
        stores it)."""
        self._steps.update(step)
        await honouring_retry_after(lambda: self._send(self._steps.snapshot()), self._clock)
        assert self.ts is not None
        return self.ts

    async def finish(self, final: SlackMessage | None = None) -> None:
        """Every step complete; `final` (a proposal, a closing line) ends the message."""
        self._steps.finish()
        await self._end(final)

    async def fail(self, reason: str, final: SlackMessage | None = None) -> None:
        """The running step failed for `reason` (plain words); `final` ends the message."""
        self._steps.fail(reason)
        await self._end(final)

    async def abandon(self) -> None:
        """Stop without a final message; a stream already begun is stopped as it stands."""
        await self._updater.close()
        if self._stream is not None and self._stream.ts is not None:
            await self._end(None)

    async def _end(self, final: SlackMessage | None) -> None:
        await self._updater.close()
        steps = self._steps.snapshot()
        stream = self._stream
        if stream is not None:
            in_stream = final if self._home_ts is None else None
            try:
                await honouring_retry_after(lambda: stream.stop(steps, in_stream), self._clock)
            except StreamingRefused as refused:
                self._fall_back(refused)
            else:
                if final is not None and in_stream is None:
                    await honouring_retry_after(lambda: self._status.show(final), self._clock)
                return
        await honouring_retry_after(lambda: self._show_in_status(steps, final), self._clock)

    async def _send(self, steps: tuple[Step, ...]) -> None:
        if self._stream is not None:
            try:
                await self._announce_once()
                await self._stream.send(steps)
                return
            except StreamingRefused as refused:
                self._fall_back(refused)
        await self._show_in_status(steps, None)

    async def _show_in_status(self, steps: tuple[Step, ...], final: SlackMessage | None) -> None:
        if self._status.ts is None:
            await self._status.post(self._thread_ts, steps)
            if final is None:
                return
        await self._status.show(final or self._status.render(steps))

    async def _announce_once(self) -> None:
        if self._announce is not None:
            await self._status.show(self._announce)
            self._announce = None

    def _fall_back(self, refused: StreamingRefused) -> None:
        """Continue in a status message: the streamed one if it began, else a new one."""
        assert self._stream is not None
        logger.info("Slack refused streaming (%s): showing progress in place", refused)
        self._status.ts = self._status.ts or self._stream.ts
        self._stream = None


def live_progress(
    services: Services, *, recipient: Recipient, **options: Any
) -> LiveProgress:
    """A `LiveProgress` with the services' Slack client and clock; streaming unless
    SLACK_STREAMING is off."""
    streaming = services.settings.slack_streaming
    return LiveProgress(
        services.slack, clock=services.clock, interval=services.status_interval,
        recipient=recipient if streaming else None, **options,
    )
