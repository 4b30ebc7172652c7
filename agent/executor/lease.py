"""The lease a run holds on its plan while it writes (`executing`, `undoing`), kept by a
heartbeat.

A run takes the plan with a lease until now + `LeaseTiming.duration`; its `Heartbeat` renews the
lease every `interval` in the background. Before each write the run calls `check()`, which
raises `LeaseLost` once another run has taken the plan over, or once the lease could not be
renewed before it ran out (the database unreachable): from then on the plan may be someone
else's, so this run writes nothing more. `persist` runs the run's own database work, waiting
out a database that is unreachable for a moment for as long as the lease lasts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from agent.plan_rows import move_plan
from agent.settings import Settings
from storage import repositories as repo
from storage.db import Database
from storage.plan_states import Transition

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LEASE = timedelta(seconds=30)
DEFAULT_HEARTBEAT = timedelta(seconds=5)
_DATABASE_RETRY_SECONDS = 0.25


class LeaseLost(Exception):
    """This run no longer holds its plan: another run took it over, or the lease ran out."""


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long a lease lasts and how often the heartbeat renews it (PLAN_LEASE_SECONDS,
    PLAN_HEARTBEAT_SECONDS)."""

    duration: timedelta = DEFAULT_LEASE
    interval: timedelta = DEFAULT_HEARTBEAT

    def __post_init__(self) -> None:
        if not timedelta(0) < self.interval < self.duration:
            raise ValueError("the heartbeat interval must be shorter than the lease")

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseTiming:
        return cls(
            duration=timedelta(seconds=settings.plan_lease_seconds),
            interval=timedelta(seconds=settings.plan_heartbeat_seconds),
        )


DEFAULT_TIMING = LeaseTiming()


def new_holder() -> str:
    """An id naming this run: host, process and a random part (at most 64 characters)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class Heartbeat:
    """Renews `holder`'s lease on `plan_id` while the run is inside `async with`."""

    def __init__(
        self,
        db: Database,
        plan_id: str,
        holder: str,
        timing: LeaseTiming,
        now: Callable[[], datetime],
        *,
        since: float,
    ) -> None:
        self.db = db
        self.plan_id = plan_id
        self.holder = holder
        self.timing = timing
        self.now = now
        # When that lease began by this process's monotonic clock (read before it was stored,
        # so the run never believes it holds longer than others do): the run's own check does
        # not depend on the wall clock (which may jump, or be a test's).
        self._since = since
        self._taken_over = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat(), name=f"lease-{self.plan_id}")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def check(self) -> None:
        """Raise `LeaseLost` unless this run still holds the plan."""
        if self._taken_over:
            raise LeaseLost(f"plan {self.plan_id}: another run took it over")
        if time.monotonic() - self._since >= self.timing.duration.total_seconds():
            raise LeaseLost(f"plan {self.plan_id}: the lease ran out before it could be renewed")

    async def leave(self, transition: Transition, **changes: Any) -> bool:
        """Move the plan out of its leased state by `transition`, only while this run still
        holds the lease (a compare-and-set on the holder); True iff it moved."""
        return await move_plan(
            self.db, self.plan_id, transition, holder=self.holder, now=self.now(), **changes
        )

    async def persist(self, work: Callable[[Session], T]) -> T:
        """`db.run(work)` while the lease holds, retried while the database is unreachable."""
        told = False
        while True:
            self.check()
            try:
                return await self.db.run(work)
            except DBAPIError as error:
                if not _unreachable(error):
                    raise
                if not told:
                    log.warning("plan %s: database unreachable, waiting for it: %s",
                                self.plan_id, type(error.orig).__name__)  # fmt: skip
                    told = True
            await asyncio.sleep(_DATABASE_RETRY_SECONDS)

    def _renew(self, session: Session, *, until: datetime) -> bool:
        return repo.renew_lease(session, plan_id=self.plan_id, holder=self.holder, until=until)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.timing.interval.total_seconds())
            since, until = time.monotonic(), self.now() + self.timing.duration
            try:
                renewed = await self.db.run(partial(self._renew, until=until))
            except Exception as error:  # the database unreachable: try again next beat
                log.warning("plan %s: could not renew the lease (%s)", self.plan_id,
                            type(error).__name__)  # fmt: skip
                continue
            if not renewed:
                log.warning("plan %s: lease lost to another run; writing stops", self.plan_id)
                self._taken_over = True
                return
            self._since = since


async def take_plan(
    db: Database,
    plan_id: str,
    *,
    start: Transition,
    take_over: Transition,
    timing: LeaseTiming,
    now: Callable[[], datetime],
) -> Heartbeat | None:
    """Move the plan into a leased state under a new lease of this run: by `start`, or by
    `take_over` when its lease has lapsed (the run holding it died). None: another run holds
    it (or it is in neither's source states)."""
    holder, since, at = new_holder(), time.monotonic(), now()
    terms: dict[str, Any] = {"holder": holder, "lease_until": at + timing.duration, "now": at}
    moved = await move_plan(db, plan_id, start, **terms)
    if not moved:
        moved = await move_plan(db, plan_id, take_over, **terms)
        if moved:
            log.warning("plan %s: taking over a run whose lease lapsed", plan_id)
    if not moved:
        return None
    return Heartbeat(db, plan_id, holder, timing, now, since=since)


def _unreachable(error: DBAPIError) -> bool:
    """A lost connection or a database that does not answer, not a failed statement."""
    return error.connection_invalidated or type(error).__name__ in {
        "OperationalError",
        "InterfaceError",
    }
