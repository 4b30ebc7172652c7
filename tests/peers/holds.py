"""A peer's answer held back until the test lets it go: the request has arrived (a write has
been applied) but its response is not sent yet, like a slow peer. The test waits until the
request is held (`wait_reached`), does what it must meanwhile (kill the client, cut the
database), then `release()`s it; a hold never released lets go by itself after `limit`."""

from __future__ import annotations

import threading

HOLD_LIMIT_SECONDS = 60.0


class Hold:
    def __init__(self, limit: float = HOLD_LIMIT_SECONDS) -> None:
        self.limit = limit
        self._reached = threading.Event()
        self._released = threading.Event()

    def wait_reached(self, within: float) -> None:
        """Block until the held request has arrived (call it from a worker thread in async
        tests: `await anyio.to_thread.run_sync(hold.wait_reached, WAIT)`)."""
        if not self._reached.wait(within):
            raise TimeoutError(f"the request to hold did not arrive within {within}s")

    def release(self) -> None:
        self._released.set()

    def block(self) -> None:
        """Called by the peer's server thread: hold the answer until released."""
        self._reached.set()
        self._released.wait(self.limit)
