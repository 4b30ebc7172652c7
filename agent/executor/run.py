"""One apply of one plan (`ApplyRun`): what it has created and failed so far, and how it sends
one phase of writes.

A phase first settles the writes whose outcome is unknown (looked up in Taiga and adopted if
there), claims the rest in the ledger, sends them within the adaptive limit (`limiter.py`) and
completes each.
A lost response that the lookup does not find is not sent again in the same run (Taiga may
still be saving it): its row stays pending and the next apply looks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from agent.errors import describe
from agent.executor.lease import Heartbeat
from agent.executor.ledger import Ledger
from agent.executor.limiter import AdaptiveLimit
from agent.executor.reconcile import Reconciler
from agent.executor.writes import Outcome, Write
from agent.progress import Progress, Step
from agent.progress import report as report_progress
from agent.proposal import Proposal
from taiga.client import TaigaSession
from taiga.errors import ResponseLost, TaigaError

log = logging.getLogger(__name__)

Create = Callable[[Write], Awaitable[Outcome]]
Find = Callable[[Sequence[Write]], Awaitable[dict[str, Outcome]]]

NOT_CONFIRMED = (
    "Taiga did not confirm this one; Retry checks Taiga first and creates it only if it is missing."
)


@dataclass
class ApplyRun:
    """The state of one apply: its Taiga session, ledger, and each write's outcome or failure."""

    taiga: TaigaSession
    proposal: Proposal
    web_url: str
    ledger: Ledger
    reconciler: Reconciler
    limit: AdaptiveLimit
    progress: Progress | None = None
    actor_id: int | None = None  # the acting Taiga user, when the caller knows it
    thread_link: str | None = None  # the Slack thread the plan came from (None: API, CLI)
    lease: Heartbeat | None = None  # held by a run that writes; None: a read-only report
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    failures: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key -> (reason, skipped)
    milestone_id: int | None = None
    milestone_slug: str | None = None
    _me_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def plan_id(self) -> str:
        return self.ledger.plan_id

    @property
    def project_id(self) -> int:
        return self.proposal.project.id

    async def report(self, key: str, title: str) -> None:
        await report_progress(self.progress, Step(key, title))

    async def me_id(self) -> int:
        """The acting Taiga user: as the caller passed it, else asked of Taiga once."""
        async with self._me_lock:
            if self.actor_id is None:
                self.actor_id = (await self.taiga.me()).id
            return self.actor_id

    def reference(self, write: Write) -> tuple[str, str] | None:
        """The `external_reference` this write is sent with."""
        return write.reference(self.plan_id)

    def remember(self, write: Write, outcome: Outcome) -> None:
        self.outcomes[write.key] = outcome
        self.reconciler.accounted_for(write.kind, outcome.id)

    def check_lease(self) -> None:
        """Raise `LeaseLost` once this run no longer holds the plan: it must not write."""
        if self.lease is not None:
            self.lease.check()

    def fail(self, write: Write, reason: str, *, skipped: bool = False) -> None:
        self.failures[write.key] = (reason, skipped)

    async def complete(self, write: Write, outcome: Outcome) -> None:
        await self.ledger.complete(write, outcome)
        self.remember(write, outcome)

    async def run_phase(
        self,
        writes: Sequence[Write],
        create: Create,
        find: Find,
        on_done: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Make every write of the phase exist in Taiga once: reconcile what is unknown, create
        the rest, look up lost responses."""
        for write in writes:
            if (outcome := self.ledger.recorded(write)) is not None:
                self.remember(write, outcome)
        unknown = [w for w in writes if self.ledger.is_pending(w)]
        fresh = [w for w in writes if self.ledger.is_new(w)]
        if not unknown and not fresh:
            return
        try:
            actor = await self.me_id()  # recorded on each claim: Taiga makes them the owner
        except TaigaError as error:
            for write in [*unknown, *fresh]:
                self.fail(write, describe(error))
            return
        missing = await self._look_up(unknown, find) if unknown else []
        claim = await self.ledger.claim(fresh, missing, actor)
        for write, outcome in claim.done_meanwhile:
            self.remember(write, outcome)
        lost = claim.unknown + await self._create_all(claim.ours, create, on_done)
        if lost:
            # Look once. Not found is not proof: after a timeout Taiga may still be saving it, so
            # it stays pending and only the next apply (Retry) creates it if it is still missing.
            for write in await self._look_up(lost, find):
                self.fail(write, NOT_CONFIRMED)

    async def _look_up(self, writes: Sequence[Write], find: Find) -> list[Write]:
        """Adopt what Taiga already has; return the writes still to be created."""
        try:
            found = await find(writes)
        except TaigaError as error:
            # Unknown outcome and no way to check: creating now could duplicate, so wait.
            for write in writes:
                self.fail(write, "could not check Taiga for it: " + describe(error))
            return []
        for write in writes:
            outcome = found.get(write.key)
            if outcome is not None:
                log.info("plan %s: adopted %s as Taiga id %s", self.plan_id, write.key, outcome.id)
                await self.complete(write, outcome)
        return [w for w in writes if w.key not in found]

    async def _create_all(
        self,
        writes: Sequence[Write],
        create: Create,
        on_done: Callable[[], Awaitable[None]] | None,
    ) -> list[Write]:
        """Send the claimed writes, completing each in the ledger; returns the lost responses."""
        lost: list[Write] = []

        async def send(write: Write) -> Outcome:
            self.check_lease()  # at the moment it goes out, after any wait for the limit
            return await create(write)

        async def one(write: Write) -> None:
            try:
                outcome = await self.limit.send(lambda: send(write))
            except ResponseLost:
                lost.append(write)
                return
            except TaigaError as error:
                self.fail(write, describe(error))
                return
            await self.complete(write, outcome)
            if on_done is not None:
                await on_done()

        # Let every write of the phase settle before an unexpected failure propagates: a sibling
        # still on the wire would otherwise land after the plan is marked partial, unrecorded.
        sends = (one(write) for write in writes)
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return lost
