"""One call to the Messages API with our single retry layer, bounded by the run's deadline.

Each attempt's timeout is cut to what is left of the deadline; connection errors, timeouts,
408/409/429 and 5xx are retried (honouring `retry-after-ms` / `retry-after`, else with jittered
backoff) at most `MAX_MODEL_RETRIES` times. A failure for good raises `PlanningError` worded by
`model_failure`; running out of time raises `BudgetExceeded(DEADLINE)`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

import anthropic as anthropic_sdk

from agent.budgets import BudgetExceeded, BudgetTracker, StopReason
from agent.errors import PlanningError, model_failure
from agent.prompts import SYSTEM_PROMPT
from agent.proposal import Usage

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 16_000
MAX_MODEL_RETRIES = 4
MAX_REQUEST_SECONDS = 600.0  # one model call, when the deadline leaves more than that
RETRYABLE_STATUS = frozenset({408, 409, 429})


class ModelCaller:
    """Calls the model for one run, with the client's own retries turned off: ours is the only
    retry layer."""

    def __init__(
        self, *, client: AsyncAnthropic, model: str, max_tokens: int, tracker: BudgetTracker
    ) -> None:
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.max_tokens = max_tokens
        self.tracker = tracker

    async def create(
        self, messages: list[dict[str, Any]], tool_params: list[dict[str, Any]]
    ) -> Any:
        """One model call with our single retry layer, bounded by the run's deadline."""
        attempt = 0
        while True:
            remaining = self.tracker.remaining()
            if remaining <= 0:
                raise BudgetExceeded(StopReason.DEADLINE)
            timeout = min(remaining, MAX_REQUEST_SECONDS)
            try:
                return await self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=[
                        {
                            "type": "text",
                            "text": SYSTEM_PROMPT,
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                    tools=tool_params,  # type: ignore[arg-type]
                    messages=messages,  # type: ignore[arg-type]
                    timeout=timeout,
                )
            except anthropic_sdk.APITimeoutError as exc:
                if timeout >= remaining:  # the call was cut to the deadline, which has passed
                    raise BudgetExceeded(StopReason.DEADLINE) from exc
                await self._before_retry(exc, attempt)
            except anthropic_sdk.APIError as exc:
                await self._before_retry(exc, attempt)
            attempt += 1

    async def _before_retry(self, exc: anthropic_sdk.APIError, attempt: int) -> None:
        """Wait before the next attempt, or raise: not retryable, out of attempts, or no time."""
        if not _retryable(exc) or attempt >= MAX_MODEL_RETRIES:
            raise PlanningError(model_failure(exc)) from exc
        wait = _retry_after(exc)
        if wait is None:
            wait = min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
        if wait >= self.tracker.remaining():
            raise BudgetExceeded(StopReason.DEADLINE) from exc
        log.info("Anthropic API %s; retrying in %.1f s", _status(exc), wait)
        await self.tracker.clock.sleep(wait)


def count_usage(usage: Usage, response: Any) -> None:
    """Add one answered call and its tokens to `usage`."""
    u = response.usage
    usage.model_calls += 1
    usage.input_tokens += u.input_tokens or 0
    usage.output_tokens += u.output_tokens or 0
    usage.cache_read_tokens += getattr(u, "cache_read_input_tokens", None) or 0
    usage.cache_creation_tokens += getattr(u, "cache_creation_input_tokens", None) or 0


def _status(exc: anthropic_sdk.APIError) -> str:
    if isinstance(exc, anthropic_sdk.APIStatusError):
        return str(exc.status_code)
    return type(exc).__name__


def _retryable(exc: anthropic_sdk.APIError) -> bool:
    if isinstance(exc, anthropic_sdk.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, anthropic_sdk.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: anthropic_sdk.APIError) -> float | None:
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
