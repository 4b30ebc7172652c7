"""Reconciliation: recognising in Taiga a write whose outcome is unknown, before it is sent again.

An outcome is unknown when a response was lost or a crashed run left a pending ledger row.
A Taiga object is that write when it has the same subject, is owned by whoever sent the
attempt (recorded on the ledger row) and was created at or after the attempt, minus clock
skew. Each Taiga object is adopted by at most one write of the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.executor.ledger import Ledger, Now
from agent.executor.writes import Outcome, Write
from agent.proposal import ActionKind

# Taiga's clock and ours may disagree a little; an object created this long before our attempt
# still counts as the result of that attempt when reconciling.
DEFAULT_CLOCK_SKEW = timedelta(minutes=2)


@dataclass
class Reconciler:
    """Matches writes to Taiga objects; knows which objects this plan already accounts for."""

    ledger: Ledger
    now: Now
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    _used_ids: dict[ActionKind, set[int]] = field(default_factory=dict)

    def accounted_for(self, kind: ActionKind, taiga_id: int) -> None:
        """Record that a write of the plan is this object, so no other write adopts it."""
        self._used_ids.setdefault(kind, set()).add(taiga_id)

    def adopt_all(
        self,
        writes: Sequence[Write],
        candidates_of: Callable[[Write], Sequence[Any]],
        me: int,
    ) -> dict[str, Outcome]:
        """Each write's match among its candidates, by write key (unmatched ones left out)."""
        found: dict[str, Outcome] = {}
        for write in writes:
            outcome = self._adopt(write, candidates_of(write), me)
            if outcome is not None:
                found[write.key] = outcome
        return found

    def _adopt(self, write: Write, candidates: Sequence[Any], me: int) -> Outcome | None:
        """The first matching candidate not yet claimed by another write of this plan."""
        used = self._used_ids.setdefault(write.kind, set())
        for candidate in sorted(candidates, key=lambda c: c.id):
            if candidate.id in used:
                continue
            if self._matches(write, candidate, me):
                used.add(candidate.id)
                return Outcome(
                    id=candidate.id,
                    ref=candidate.ref,
                    version=candidate.version,
                    reconciled=True,
                )
        return None

    def _matches(self, write: Write, candidate: Any, me: int) -> bool:
        """Same subject, owned by whoever sent our attempt (the acting user for rows recorded
        before the sender was), created at/after it (minus skew)."""
        entry = self.ledger.entry(write)
        since = (entry.attempted_at if entry else self.now()) - self.clock_skew
        owner = entry.actor_taiga_id if entry and entry.actor_taiga_id is not None else me
        return (
            candidate.subject.strip() == write.subject.strip()
            and (candidate.owner is None or candidate.owner == owner)
            and _aware(candidate.created_date) >= since
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
