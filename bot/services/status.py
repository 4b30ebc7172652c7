"""The steps shown in one ordinary thread message, updated in place (chat.update): the way
progress is shown where Slack's chat streaming is not available."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.web.async_client import AsyncWebClient

from agent.progress import Step
from bot import blocks
from bot.blocks.kit import SlackMessage

MARKS = {"in_progress": "…", "complete": "✓", "error": "✗"}


def step_line(step: Step) -> str:
    """"✓ Reading the project in Taiga", "✗ Creating tasks 3/8 — Taiga refused …"."""
    line = f"{MARKS[step.status]} {step.title}"
    return f"{line} — {step.details}" if step.details else line


class StatusMessage:
    """A thread message that shows a title and the steps so far."""

    def __init__(self, slack: AsyncWebClient, *, channel: str, title: str, ts: str | None) -> None:
        self._slack = slack
        self.channel = channel
        self.title = title
        self.ts = ts

    async def post(self, thread_ts: str, steps: Sequence[Step]) -> str:
        """Post the message in the thread (once); returns its ts."""
        if self.ts is None:
            message = self.render(steps)
            response = await self._slack.chat_postMessage(
                channel=self.channel, thread_ts=thread_ts, **message.as_kwargs()
            )
            self.ts = str(response["ts"])
        return self.ts

    async def show(self, message: SlackMessage) -> None:
        assert self.ts is not None
        await self._slack.chat_update(channel=self.channel, ts=self.ts, **message.as_kwargs())

    def render(self, steps: Sequence[Step]) -> SlackMessage:
        return blocks.status_blocks([step_line(step) for step in steps], self.title)
