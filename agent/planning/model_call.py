"""One streamed call to the Messages API with our single retry layer, bounded by the run's
deadline.

The answer is streamed (`agent.planning.streaming` assembles it), so a long plan is never lost
whole: when the stream breaks off after some blocks finished (no event for `stall_seconds`, an
`error` event, a broken connection, the deadline), the turn is returned with what finished and
`broken_off` set, and the loop continues from there. A stream that breaks off before anything
finished is retried like a failed request. Each attempt's timeout is cut to what is left of the
deadline; connection errors, timeouts, 408/409/429, 5xx and overloaded / api_error events are
retried (honouring `retry-after-ms` / `retry-after`, else with jittered backoff) at most
`MAX_MODEL_RETRIES` times. A failure for good raises `PlanningError` worded by `model_failure`;
running out of time raises `BudgetExceeded(DEADLINE)`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anthropic as anthropic_sdk

from agent.budgets import BudgetExceeded, BudgetTracker, StopReason
from agent.errors import PlanningError, model_failure
from agent.planning.streaming import BrokenOff, StreamedTurn
from agent.prompts import SYSTEM_PROMPT
from agent.proposal import Usage

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 16_000
MAX_MODEL_RETRIES = 4
MAX_REQUEST_SECONDS = 600.0  # one model call, when the deadline leaves more than that
DEFAULT_STALL_SECONDS = 60.0  # no stream event (the API pings) for this long: it stalled
RETRYABLE_STATUS = frozenset({408, 409, 429})
RETRYABLE_EVENT_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class _StreamBroke(Exception):
    """The stream ended before message_stop; `cause` is the error behind it."""

    def __init__(self, why: BrokenOff, cause: BaseException) -> None:
        super().__init__(why.value)
        self.why = why
        self.cause = cause


class ModelCaller:
    """Calls the model for one run, with the client's own retries turned off: ours is the only
    retry layer."""

    def __init__(
        self,
        *,
        client: AsyncAnthropic,
        model: str,
        max_tokens: int,
        tracker: BudgetTracker,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ) -> None:
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.max_tokens = max_tokens
        self.tracker = tracker
        self.stall_seconds = stall_seconds

    async def create(
        self, messages: list[dict[str, Any]], tool_params: list[dict[str, Any]]
    ) -> StreamedTurn:
        """One streamed model turn with our single retry layer, bounded by the run's deadline;
        a turn that broke off after some blocks finished is returned with `broken_off` set."""
        attempt = 0
        while True:
            remaining = self.tracker.remaining()
            if remaining <= 0:
                raise BudgetExceeded(StopReason.DEADLINE)
            timeout = min(remaining, MAX_REQUEST_SECONDS)
            turn = StreamedTurn()
            try:
                await self._stream_into(turn, messages, tool_params, timeout)
                return turn
            except _StreamBroke as broke:
                if turn.tool_calls():  # finished work: the loop keeps it and continues
                    turn.broken_off = broke.why
                    log.info("model stream %s; keeping what finished", broke.why.value)
                    return turn
                if broke.why is BrokenOff.DEADLINE:
                    raise BudgetExceeded(StopReason.DEADLINE) from broke.cause
                failure: BaseException = broke.cause
            except anthropic_sdk.APITimeoutError as exc:
                if timeout >= remaining:  # the call was cut to the deadline, which has passed
                    raise BudgetExceeded(StopReason.DEADLINE) from exc
                failure = exc
            except anthropic_sdk.APIError as exc:
                failure = exc
            await self._before_retry(failure, attempt)
            attempt += 1

    async def _stream_into(
        self,
        turn: StreamedTurn,
        messages: list[dict[str, Any]],
        tool_params: list[dict[str, Any]],
        request_seconds: float,
    ) -> None:
        """Stream one answer into `turn`; raises `_StreamBroke` if it ends before message_stop
        (HTTP errors before the first event raise the SDK's own errors)."""
        stream = await self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=[
                {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
            ],
            tools=tool_params,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
            timeout=request_seconds,
            stream=True,
        )
        async with stream:
            events = stream.__aiter__()
            while (event := await self._next_event(events)) is not None:
                turn.add(event)
        if turn.stop_reason is None:  # the connection closed without message_delta
            raise _StreamBroke(BrokenOff.ERROR, ConnectionResetError())

    async def _next_event(self, events: AsyncIterator[Any]) -> Any | None:
        """The next event, or None at the end; a wait longer than the stall limit or what is
        left of the deadline breaks the stream off."""
        remaining = self.tracker.remaining()
        wait = min(self.stall_seconds, remaining)
        try:
            return await asyncio.wait_for(anext(events), wait)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            why = BrokenOff.DEADLINE if wait >= remaining else BrokenOff.STALLED
            raise _StreamBroke(why, exc) from exc
        except Exception as exc:  # an `error` event, or a transport error passed through
            raise _StreamBroke(BrokenOff.ERROR, exc) from exc

    async def _before_retry(self, exc: BaseException, attempt: int) -> None:
        """Wait before the next attempt, or raise: not retryable, out of attempts, or no time."""
        if not _retryable(exc) or attempt >= MAX_MODEL_RETRIES:
            raise PlanningError(_failure(exc, self.stall_seconds)) from exc
        wait = _retry_after(exc)
        if wait is None:
            wait = min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
        if wait >= self.tracker.remaining():
            raise BudgetExceeded(StopReason.DEADLINE) from exc
        log.info("Anthropic API %s; retrying in %.1f s", _status(exc), wait)
        await self.tracker.clock.sleep(wait)


def count_usage(usage: Usage, turn: StreamedTurn) -> None:
    """Add one answered call and its tokens to `usage`."""
    usage.model_calls += 1
    usage.input_tokens += turn.input_tokens
    usage.output_tokens += turn.output_tokens
    usage.cache_read_tokens += turn.cache_read_tokens
    usage.cache_creation_tokens += turn.cache_creation_tokens


def _status(exc: BaseException) -> str:
    if isinstance(exc, anthropic_sdk.APIStatusError):
        return _event_error_type(exc) or str(exc.status_code)
    return type(exc).__name__


def _event_error_type(exc: anthropic_sdk.APIStatusError) -> str | None:
    """The error type of an `error` event mid-stream (its HTTP status was 200), else None."""
    if exc.status_code != 200 or not isinstance(exc.body, dict):
        return None
    error = exc.body.get("error")
    return error.get("type") if isinstance(error, dict) else None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, anthropic_sdk.APIStatusError):
        event_error = _event_error_type(exc)
        if event_error is not None:
            return event_error in RETRYABLE_EVENT_ERRORS
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    # connection errors and timeouts, before or during the stream
    return not isinstance(exc, anthropic_sdk.APIError) or isinstance(
        exc, anthropic_sdk.APIConnectionError
    )


def _failure(exc: BaseException, stall_seconds: float) -> str:
    """The sentence of a model call that failed for good."""
    if isinstance(exc, anthropic_sdk.APIError):
        return model_failure(exc)
    if isinstance(exc, TimeoutError):
        return f"Claude stopped sending its answer for {stall_seconds:g} s."
    return "The connection to Claude broke off mid-answer."


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds), if the response has them."""
    if not isinstance(exc, anthropic_sdk.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None
