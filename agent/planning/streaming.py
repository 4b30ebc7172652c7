"""One streamed model turn, assembled from the Messages API's raw stream events.

Only finished blocks count: a text block as far as it came, a tool_use block once its
content_block_stop arrived and its streamed JSON parses whole. A turn that is cut (stop_reason
`max_tokens` or `model_context_window_exceeded`) or breaks off (a stall, an `error` event, a
broken connection, the run's deadline) keeps every finished block; `cut_tool` names the call
that did not finish, so the proposal can say what was cut.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

CUT_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})
_SUBJECT = re.compile(r'"subject"\s*:\s*"((?:[^"\\]|\\.)*)"')


class BrokenOff(StrEnum):
    """Why a stream ended before message_stop."""

    STALLED = "stalled"  # no event for the stall limit
    ERROR = "error"  # an `error` event or a broken connection
    DEADLINE = "deadline"  # the run's time limit passed mid-answer


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(slots=True)
class _Block:
    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    json: str = ""
    stopped: bool = False

    def finished_input(self) -> dict[str, Any] | None:
        """The tool input, if the block finished and its JSON is whole; else None."""
        if self.type != "tool_use" or not self.stopped:
            return None
        try:
            value = json.loads(self.json) if self.json.strip() else {}
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


@dataclass(slots=True)
class StreamedTurn:
    """What one streamed answer delivered, event by event (`add`)."""

    stop_reason: str | None = None
    broken_off: BrokenOff | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    _blocks: dict[int, _Block] = field(default_factory=dict)

    def add(self, event: Any) -> None:
        """Take in one raw stream event (pings and unknown events are ignored)."""
        kind = event.type
        if kind == "message_start":
            self._count(event.message.usage)
        elif kind == "content_block_start":
            block = event.content_block
            self._blocks[event.index] = _Block(
                type=block.type,
                text=getattr(block, "text", "") or "",
                id=getattr(block, "id", "") or "",
                name=getattr(block, "name", "") or "",
            )
        elif kind == "content_block_delta":
            self._delta(event.index, event.delta)
        elif kind == "content_block_stop" and event.index in self._blocks:
            self._blocks[event.index].stopped = True
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self._count(event.usage)

    def _delta(self, index: int, delta: Any) -> None:
        block = self._blocks.get(index)
        if block is None:
            return
        if delta.type == "text_delta":
            block.text += delta.text
        elif delta.type == "input_json_delta":
            block.json += delta.partial_json

    def _count(self, usage: Any) -> None:
        """Usage figures are cumulative: the latest seen wins."""
        self.input_tokens = getattr(usage, "input_tokens", None) or self.input_tokens
        self.output_tokens = getattr(usage, "output_tokens", None) or self.output_tokens
        self.cache_read_tokens = (
            getattr(usage, "cache_read_input_tokens", None) or self.cache_read_tokens
        )
        self.cache_creation_tokens = (
            getattr(usage, "cache_creation_input_tokens", None) or self.cache_creation_tokens
        )

    @property
    def is_cut(self) -> bool:
        """The answer did not end where the model meant it to."""
        return self.broken_off is not None or self.stop_reason in CUT_STOPS

    def tool_calls(self) -> list[ToolCall]:
        """The finished tool calls, in order."""
        calls = []
        for block in self._ordered():
            value = block.finished_input()
            if value is not None:
                calls.append(ToolCall(block.id, block.name, value))
        return calls

    def cut_tool(self) -> tuple[str, str] | None:
        """(tool name, the subject it was writing, or "") of a tool call that did not finish."""
        for block in self._ordered():
            if block.type == "tool_use" and block.finished_input() is None:
                match = _SUBJECT.search(block.json)
                subject = json.loads(f'"{match.group(1)}"') if match else ""
                return block.name, subject
        return None

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self._ordered() if b.type == "text")

    def assistant_content(self) -> list[dict[str, Any]]:
        """The finished blocks as the assistant message to send back (empty text is left out:
        the API refuses it)."""
        content: list[dict[str, Any]] = []
        for block in self._ordered():
            if block.type == "text" and block.text:
                content.append({"type": "text", "text": block.text})
            elif (value := block.finished_input()) is not None:
                content.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": value}
                )
        return content

    def _ordered(self) -> list[_Block]:
        return [self._blocks[i] for i in sorted(self._blocks)]
