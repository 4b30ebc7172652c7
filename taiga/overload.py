"""Telling whoever paces requests that Taiga is overloaded: a 429 or a 5xx answer.

The executor's adaptive write limit (`agent.executor.limiter`) sets `overload_listener` around
each write it sends; `TaigaClient` calls `report_overload` for every such answer, a 429 it then
waits through itself included, so the limit learns of throttling the caller never sees.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

overload_listener: ContextVar[Callable[[int], None] | None] = ContextVar(
    "taiga_overload_listener", default=None
)


def report_overload(status: int) -> None:
    """Tell the current task's listener (if any) that Taiga answered `status`."""
    listener = overload_listener.get()
    if listener is not None:
        listener(status)
