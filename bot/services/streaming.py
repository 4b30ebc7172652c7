"""The steps streamed into a thread with Slack's chat streaming (chat.startStream,
chat.appendStream, chat.stopStream through slack_sdk's `chat_stream()`): each step is a
`task_update` chunk that goes in_progress → complete (or error, with the reason)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from agent.progress import Step
from bot.blocks.kit import SlackMessage
from bot.services.updater import retry_after
from bot.slack_text import truncate

CHUNK_TEXT_MAX = 256


class StreamingRefused(Exception):
    """Slack will not stream here — a workspace without it (`unknown_method`), a conversation
    that does not allow it (`method_not_supported_for_channel_type`), a stream Slack ended
    (`message_not_in_streaming_state`), or any other refusal: show the progress another way."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who the stream is for: in a channel Slack needs the user and their team."""

    team_id: str
    user_id: str


def task_chunk(step: Step) -> TaskUpdateChunk:
    details = truncate(step.details, CHUNK_TEXT_MAX) if step.details else None
    return TaskUpdateChunk(
        id=step.key, title=truncate(step.title, CHUNK_TEXT_MAX), status=step.status,
        details=details,
    )


class StepStream:
    """One streamed message; sends only the steps that changed since the last call, each
    shown as in progress before it completes."""

    def __init__(
        self, slack: AsyncWebClient, *, channel: str, thread_ts: str, recipient: Recipient
    ) -> None:
        self._slack = slack
        self.channel = channel
        self._thread_ts = thread_ts
        self._recipient = recipient
        self._stream: AsyncChatStream | None = None
        self._sent: dict[str, Step] = {}

    @property
    def ts(self) -> str | None:
        return self._stream.ts if self._stream is not None else None

    async def send(self, steps: Sequence[Step]) -> None:
        """Start the stream, or append the changed steps to it."""
        chunks = self._changes(steps)
        if not chunks and self._stream is not None:
            return
        stream = await self._open()
        await self._refusing(stream.append(chunks=chunks))
        self._mark_sent(steps)

    async def stop(self, steps: Sequence[Step], final: SlackMessage | None) -> None:
        """The last changes, and `final`'s blocks (a proposal's buttons) under the steps."""
        stream = await self._open()
        kwargs: dict[str, Any] = {"chunks": self._changes(steps)}
        if final is not None:
            kwargs["blocks"] = final.as_kwargs().get("blocks")
        await self._refusing(stream.stop(**kwargs))
        self._mark_sent(steps)

    async def _open(self) -> AsyncChatStream:
        if self._stream is None:
            self._stream = await self._slack.chat_stream(
                channel=self.channel, thread_ts=self._thread_ts,
                recipient_team_id=self._recipient.team_id,
                recipient_user_id=self._recipient.user_id,
                task_display_mode="timeline",
            )
        return self._stream

    def _changes(self, steps: Sequence[Step]) -> list[TaskUpdateChunk]:
        chunks: list[TaskUpdateChunk] = []
        for step in steps:
            if self._sent.get(step.key) == step:
                continue
            if step.key not in self._sent and step.status != "in_progress":
                chunks.append(task_chunk(Step(step.key, step.title)))
            chunks.append(task_chunk(step))
        return chunks

    def _mark_sent(self, steps: Sequence[Step]) -> None:
        self._sent.update({step.key: step for step in steps})

    @staticmethod
    async def _refusing(call: Any) -> Any:
        """A 429 is left to the caller to wait out; any other refusal ends the streaming."""
        try:
            return await call
        except SlackApiError as error:
            if retry_after(error) is not None:
                raise
            raise StreamingRefused(str(error.response.get("error"))) from error
