"""How many writes of one apply are on the wire at once: an adaptive (AIMD) limit.

The limit starts at `start` and never exceeds `maximum` (TAIGA_WRITE_CONCURRENCY). Each 429 or
5xx answer Taiga gives a write halves it (once per burst: answers to writes sent before the last
halving do not halve it again); after `limit` writes in a row went through it grows by one. So a
Taiga that keeps up gets the full limit, and one that throttles gets roughly what it serves.

A write Taiga throttled twice in a row (the client waits through the first 429 itself) is sent
again after the wait Taiga asks for, up to `THROTTLED_ATTEMPTS` times: a 429 means nothing was
saved, so sending again cannot duplicate. A wait longer than `LONGEST_WAIT` is not slept
through: the write fails with Taiga's "try again in N s".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from taiga.errors import RateLimited
from taiga.overload import overload_listener

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_START = 16
THROTTLED_ATTEMPTS = 6
LONGEST_WAIT = 10.0


@dataclass
class _Slot:
    epoch: int  # the limit's epoch when the write was sent
    overloaded: bool = False


class AdaptiveLimit:
    """An additive-increase, multiplicative-decrease bound on concurrent writes."""

    def __init__(self, maximum: int, *, start: int = DEFAULT_START, sleep: Sleep = asyncio.sleep):
        self.maximum = max(1, maximum)
        self.limit = max(1, min(start, self.maximum))
        self.halvings = 0
        self._sleep = sleep
        self._in_flight = 0
        self._streak = 0  # writes through in a row since the last change
        self._epoch = 0
        self._changed = asyncio.Condition()

    async def send(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run `write` within the limit; send it again after Taiga's wait if it is throttled."""
        for attempt in range(1, THROTTLED_ATTEMPTS + 1):
            try:
                return await self._within_limit(write)
            except RateLimited as throttled:
                if attempt == THROTTLED_ATTEMPTS or throttled.wait_seconds > LONGEST_WAIT:
                    raise
                await self._sleep(throttled.wait_seconds)
        raise AssertionError("unreachable")

    async def _within_limit(self, write: Callable[[], Awaitable[T]]) -> T:
        slot = await self._acquire()
        token = overload_listener.set(lambda _status: self._overloaded(slot))
        try:
            return await write()
        finally:
            overload_listener.reset(token)
            await self._release(slot)

    async def _acquire(self) -> _Slot:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
            return _Slot(self._epoch)

    async def _release(self, slot: _Slot) -> None:
        async with self._changed:
            self._in_flight -= 1
            if not slot.overloaded:
                self._streak += 1
                if self._streak >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._streak = 0
            self._changed.notify_all()

    def _overloaded(self, slot: _Slot) -> None:
        slot.overloaded = True
        if slot.epoch != self._epoch:
            return  # sent before the last halving: that halving already answered this burst
        self.limit = max(1, self.limit // 2)
        self.halvings += 1
        self._epoch += 1
        self._streak = 0
