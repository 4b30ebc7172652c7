"""The bounded pool background work runs through: at most `size` pieces at once per process
(`MAX_CONCURRENT_WORK`), at most `queue_limit` more waiting their turn (`MAX_QUEUED_WORK`).

A burst of requests is acknowledged at once either way; beyond the pool it waits (and the
person is told it is queued), beyond the queue it is refused in words, never dropped silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

QUEUED = (
    "Lots of requests right now: yours is number {position} in the queue and starts as soon "
    "as one ahead of it finishes."
)
TOO_BUSY = (
    "I'm too busy right now ({waiting} requests are waiting already); nothing was started. "
    "Try again in a minute."
)


@dataclass(frozen=True, slots=True)
class Admission:
    """A place in the pool: at once, or `position` in the queue."""

    queued: bool
    position: int


@dataclass(eq=False)
class WorkPool:
    size: int
    queue_limit: int
    _slots: asyncio.Semaphore = field(init=False, repr=False)
    _admitted: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.size)

    @property
    def waiting(self) -> int:
        return max(0, self._admitted - self.size)

    def admit(self) -> Admission | None:
        """Reserve a place now (synchronously, so a burst is counted exactly): None when the
        queue is full."""
        waiting = self.waiting
        if self._admitted >= self.size and waiting >= self.queue_limit:
            return None
        self._admitted += 1
        return Admission(queued=self._admitted > self.size, position=waiting + 1)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Hold one of the running places for an admitted piece of work (waiting for one first
        if all are taken)."""
        async with self._slots:
            yield

    def leave(self) -> None:
        """An admitted piece of work ended (finished, failed or cancelled, started or not)."""
        self._admitted -= 1
