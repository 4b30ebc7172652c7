"""Reconciliation: recognising in Taiga a write whose outcome is unknown, before it is sent again.

An outcome is unknown when a response was lost or a crashed run left a pending ledger row. Which
Taiga object is that write depends on what the ledger row says its latest attempt sent:

- **An `external_reference`** (every story and task claimed since revision 0006): the object
  whose `external_reference` equals it exactly *is* that write, whatever its subject, owner or
  date are now; nothing else is, however alike. A story someone made by hand with the same
  subject has no reference (or another program's), so it is never adopted and ours is created.
- **No reference** (a row claimed before references were sent, whose attempt carried none):
  the plain match of before - same subject, owned by whoever sent the attempt (recorded on the
  row; the acting user on rows older than that), created at or after the attempt minus clock
  skew - and only among objects that carry no reference, since such an attempt made none.
  Sending such a write again restamps its row with the reference, so this fallback ends with
  the first resend.

Taiga cannot filter lists by `external_reference`, so candidates are matched here, client side.
Each Taiga object is adopted by at most one write of the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.executor.ledger import Ledger, Now
from agent.executor.writes import Outcome, Write
from agent.proposal import ActionKind
from storage.repositories import LedgerEntry

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
                return Outcome(id=candidate.id, ref=candidate.ref, reconciled=True)
        return None

    def _matches(self, write: Write, candidate: Any, me: int) -> bool:
        """By the reference the row's attempt sent; the plain match only for rows without one."""
        entry = self.ledger.entry(write)
        reference = _reference_of(candidate)
        sent = entry.external_reference if entry else None
        if sent is not None:
            return reference == sent
        return reference is None and self._looks_like_old_attempt(write, entry, candidate, me)

    def _looks_like_old_attempt(
        self, write: Write, entry: LedgerEntry | None, candidate: Any, me: int
    ) -> bool:
        """Same subject, owned by whoever sent the attempt (the acting user for rows recorded
        before the sender was), created at/after it (minus skew)."""
        since = (entry.attempted_at if entry else self.now()) - self.clock_skew
        owner = entry.actor_taiga_id if entry and entry.actor_taiga_id is not None else me
        return (
            candidate.subject.strip() == write.subject.strip()
            and (candidate.owner is None or candidate.owner == owner)
            and _aware(candidate.created_date) >= since
        )


def _reference_of(candidate: Any) -> tuple[str, ...] | None:
    reference = candidate.external_reference
    return tuple(reference) if reference is not None else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
