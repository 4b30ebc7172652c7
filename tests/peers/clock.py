"""The one test clock: a `taiga.clock.Clock` whose sleeps are recorded and move time at once."""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(0.0, seconds)
        await asyncio.sleep(0)  # still a checkpoint, like a real sleep

    def advance(self, seconds: float) -> None:
        self.time += seconds
