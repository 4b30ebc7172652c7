"""A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 serving POST /v1/messages.

Tests script the turns it answers with, in order:

    fake_anthropic.script(
        message(tool_use("taiga_create_user_story", {...}), stop_reason="tool_use"),
        rate_limited(retry_after=3),          # a 429 with retry-after
        lambda request: message(text("Done.")),  # built from the request it received
    )

Each scripted turn is a message dict (see `message`), an `ErrorTurn` (status, Anthropic's error
JSON shape, headers), an `Interrupted` turn (streamed, then broken off by an `error` event or a
stall), or a callable receiving the request JSON and returning one of them.

A request with `"stream": true` is answered with the Messages API's server-sent events, as the
real API sends them: message_start, ping, then per content block content_block_start, its
deltas (text_delta, or input_json_delta carrying the tool input's JSON in pieces) and
content_block_stop, then message_delta (stop_reason, cumulative usage) and message_stop. A turn
whose stop_reason is `max_tokens` or `model_context_window_exceeded` is cut like the real one: its
last block stops halfway (a tool_use's JSON does not close). An `ErrorTurn` is an HTTP error
before any event, like the real API's. A request the
real API would refuse (roles not alternating, an empty text block, a tool_use without its
tool_result in the next message or a tool_result without its tool_use, a tool schema that is not
an object or has a top-level anyOf/oneOf/allOf, more than 4 cache_control markers) gets the same
400 `invalid_request_error` and uses no scripted turn. Every request
is recorded whole (`.requests`: path, headers, body) so tests can assert exactly what the model was
sent and which tools were offered. The real `anthropic.AsyncAnthropic(base_url=fake.base_url,
api_key="test")` talks to it.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_ids = itertools.count(1)


@dataclass(frozen=True)
class ErrorTurn:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": f"req_fake_{next(_ids)}",
        }


@dataclass(frozen=True)
class Interrupted:
    """A streamed turn that breaks off after its first `after_blocks` content blocks: with an
    `error` event (`error` set, as the real API does when it is overloaded mid-answer) or by a
    stall (no further byte for `stall_seconds`, or until the fake closes), never finishing."""

    message: dict[str, Any]
    after_blocks: int
    error: ErrorTurn | None = None
    stall_seconds: float = 30.0


Answer = dict[str, Any] | ErrorTurn | Interrupted
Turn = Answer | Callable[[dict[str, Any]], Answer]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    raw: str

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.body.get("tools", [])]


# --- building scripted turns -------------------------------------------------------------


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": id or f"toolu_fake_{next(_ids):04d}",
        "name": name,
        "input": input,
    }


def message(
    *content: dict[str, Any],
    stop_reason: str | None = None,
    input_tokens: int = 1200,
    output_tokens: int = 300,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
) -> dict[str, Any]:
    """An assistant message; stop_reason defaults to tool_use if it calls tools, else end_turn."""
    if stop_reason is None:
        has_tools = any(block.get("type") == "tool_use" for block in content)
        stop_reason = "tool_use" if has_tools else "end_turn"
    return {
        "type": "message",
        "role": "assistant",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
        },
    }


def rate_limited(
    *, retry_after: float | None = None, retry_after_ms: int | None = None
) -> ErrorTurn:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return ErrorTurn(
        429, "rate_limit_error", "Number of request tokens has exceeded your rate limit.", headers
    )


def overloaded(*, retry_after: float | None = None) -> ErrorTurn:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return ErrorTurn(529, "overloaded_error", "Overloaded", headers)


def server_error() -> ErrorTurn:
    return ErrorTurn(500, "api_error", "Internal server error")


CUT_STOPS = ("max_tokens", "model_context_window_exceeded")
_CHUNK = 40  # characters per streamed delta


def stream_events(reply: dict[str, Any], *, after_blocks: int | None = None) -> list[str]:
    """The SSE frames that stream `reply` (a full message), as the real API sends them; with
    `after_blocks`, only message_start and that many complete blocks."""
    start = {**reply, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**reply["usage"], "output_tokens": 1}
    frames = [_sse("message_start", {"type": "message_start", "message": start})]
    frames.append(_sse("ping", {"type": "ping"}))
    blocks = reply["content"]
    cut_last = reply["stop_reason"] in CUT_STOPS
    for index, block in enumerate(blocks):
        if after_blocks is not None and index >= after_blocks:
            return frames
        frames += _block_events(index, block, cut=cut_last and index == len(blocks) - 1)
    usage = {"output_tokens": reply["usage"]["output_tokens"]}
    delta = {"stop_reason": reply["stop_reason"], "stop_sequence": reply.get("stop_sequence")}
    frames.append(_sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    frames.append(_sse("message_stop", {"type": "message_stop"}))
    return frames


def _block_events(index: int, block: dict[str, Any], *, cut: bool) -> list[str]:
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        payload, delta_type, field = json.dumps(block["input"]), "input_json_delta", "partial_json"
    else:
        opening = {**block, "text": ""}
        payload, delta_type, field = block.get("text", ""), "text_delta", "text"
    if cut:  # the length limit struck halfway through this block
        payload = payload[: max(1, len(payload) // 2)]
    frames = [_sse("content_block_start", {
        "type": "content_block_start", "index": index, "content_block": opening,
    })]
    for at in range(0, len(payload), _CHUNK):
        delta = {"type": delta_type, field: payload[at : at + _CHUNK]}
        frames.append(_sse("content_block_delta", {
            "type": "content_block_delta", "index": index, "delta": delta,
        }))
    frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return frames


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message in a recorded request body."""
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return []
    return [block for block in content if block.get("type") == "tool_result"]


# --- what the real API refuses -----------------------------------------------------------


def invalid_request(message: str) -> ErrorTurn:
    return ErrorTurn(400, "invalid_request_error", message)


_COMBINATORS = ("anyOf", "oneOf", "allOf")


def request_problem(body: dict[str, Any]) -> str | None:
    """The first reason the real Messages API would answer this request with a 400, if any."""
    for check in (_check_top_level, _check_tools, _check_messages, _check_cache_control):
        problem = check(body)
        if problem is not None:
            return problem
    return None


def _check_top_level(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required and must be a positive integer"
    system = body.get("system")
    if isinstance(system, list):
        for n, block in enumerate(system):
            if block.get("type") != "text" or not block.get("text"):
                return f"system.{n}: text content blocks must be non-empty"
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    for n, tool in enumerate(body.get("tools") or []):
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{n}.custom.input_schema.type: Input should be 'object'"
        if any(key in schema for key in _COMBINATORS):
            return (
                f"tools.{n}.custom.input_schema: input_schema does not support oneOf, allOf, or "
                "anyOf at the top level"
            )
    return None


def _check_messages(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    previous: dict[str, Any] | None = None
    for n, msg in enumerate(messages):
        if previous is not None and previous.get("role") == msg.get("role"):
            return (
                f'messages: roles must alternate between "user" and "assistant", but found '
                f'multiple "{msg.get("role")}" roles in a row'
            )
        final_assistant = n == len(messages) - 1 and msg.get("role") == "assistant"
        problem = _check_content(n, msg, final_assistant) or _check_pairing(n, previous, msg)
        if problem is not None:
            return problem
        previous = msg
    return _check_pairing(len(messages), previous, None)


def _blocks(msg: dict[str, Any] | None) -> list[dict[str, Any]]:
    content = (msg or {}).get("content")
    return content if isinstance(content, list) else []


def _check_content(n: int, msg: dict[str, Any], final_assistant: bool) -> str | None:
    content = msg.get("content")
    if not content and not final_assistant:
        return (
            f"messages.{n}: all messages must have non-empty content except for the optional "
            "final assistant message"
        )
    for k, block in enumerate(_blocks(msg)):
        if block.get("type") == "text" and not block.get("text"):
            return f"messages.{n}.content.{k}.text: text content blocks must be non-empty"
        if block.get("type") == "tool_result" and msg.get("role") != "user":
            return f"messages.{n}.content.{k}: tool_result blocks are only allowed in user messages"
    return None


def _check_pairing(
    n: int, previous: dict[str, Any] | None, msg: dict[str, Any] | None
) -> str | None:
    """Every tool_use is answered by a tool_result in the next message, and only those."""
    asked = [b["id"] for b in _blocks(previous) if b.get("type") == "tool_use"]
    if msg is None:  # the last message: a final tool_use is fine (nothing follows yet)
        return None
    answered = [b.get("tool_use_id") for b in _blocks(msg) if b.get("type") == "tool_result"]
    unexpected = [i for i in answered if i not in asked]
    if unexpected:
        return (
            f"messages.{n}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
            f"{', '.join(map(str, unexpected))}. Each `tool_result` block must have a "
            "corresponding `tool_use` block in the previous message."
        )
    missing = [i for i in asked if i not in answered]
    if missing:
        return (
            f"messages.{n - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    blocks = _blocks(msg)
    first_other = next((k for k, b in enumerate(blocks) if b.get("type") != "tool_result"), None)
    if answered and first_other is not None and first_other < len(answered):
        return f"messages.{n}: tool_result blocks must come first in the message content"
    return None


def _check_cache_control(body: dict[str, Any]) -> str | None:
    marked: list[Any] = [t.get("cache_control") for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, list):
        marked += [b.get("cache_control") for b in system]
    for msg in body.get("messages") or []:
        marked += [b.get("cache_control") for b in _blocks(msg)]
    marked = [m for m in marked if m is not None]
    if len(marked) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marked)}."
    if any(not isinstance(m, dict) or m.get("type") != "ephemeral" for m in marked):
        return "cache_control.type: Input should be 'ephemeral'"
    return None


# --- the server --------------------------------------------------------------------------


class FakeAnthropic:
    def __init__(self) -> None:
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._closing = threading.Event()  # releases stalled streams
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *turns: Turn) -> None:
        with self._lock:
            self._turns.extend(turns)

    @property
    def pending(self) -> int:
        """Scripted turns not yet served."""
        with self._lock:
            return len(self._turns)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _next(self, body: dict[str, Any]) -> Answer:
        with self._lock:
            turn = self._turns.popleft() if self._turns else None
        if turn is None:
            return ErrorTurn(400, "invalid_request_error", "fake_anthropic: no scripted turn left")
        if callable(turn):
            turn = turn(body)
        return turn

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this, Nagle's algorithm holds the
            # body of a kept-alive answer until the client's delayed ACK (~40 ms).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", payload.get("request_id", f"req_fake_{next(_ids)}"))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    body = {}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(RecordedRequest("POST", self.path, headers, body, raw))
                if self.path.split("?")[0] != "/v1/messages":
                    err = ErrorTurn(404, "not_found_error", f"Not found: {self.path}")
                    self._send(err.status, err.body(), err.headers)
                    return
                problem = request_problem(body)
                if problem is not None:  # refused like the real API: no scripted turn is used
                    err = invalid_request(problem)
                    self._send(err.status, err.body(), err.headers)
                    return
                turn = fake._next(body)
                if isinstance(turn, ErrorTurn):
                    self._send(turn.status, turn.body(), turn.headers)
                    return
                if isinstance(turn, Interrupted):
                    self._interrupted(turn, body)
                    return
                reply = {"id": f"msg_fake_{next(_ids)}", "model": body.get("model", "fake"), **turn}
                if body.get("stream"):
                    self._stream(stream_events(reply))
                else:
                    self._send(200, reply, {})

            def _interrupted(self, turn: Interrupted, body: dict[str, Any]) -> None:
                reply = {
                    "id": f"msg_fake_{next(_ids)}",
                    "model": body.get("model", "fake"),
                    **turn.message,
                }
                frames = stream_events(reply, after_blocks=turn.after_blocks)
                if turn.error is not None:
                    self._stream([*frames, _sse("error", turn.error.body())])
                    return
                self._stream(frames)
                fake._closing.wait(turn.stall_seconds)  # the stall: nothing more is sent

            def _stream(self, frames: list[str]) -> None:
                """Server-sent events, unframed (no length): the connection closes after them."""
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("request-id", f"req_fake_{next(_ids)}")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for frame in frames:
                        self.wfile.write(frame.encode())
                        self.wfile.flush()
                except OSError:  # the client went away
                    pass
                self.close_connection = True

        return Handler


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake
