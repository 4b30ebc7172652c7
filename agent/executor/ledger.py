"""The write ledger as one apply sees it: which writes are claimed, which are done and with what.

A write is claimed *pending* in the database before its request is sent and completed *done*
with Taiga's id and ref afterwards, so a retry, a second approval or a restart never sends it
twice. The rows live in `storage.repositories.ledger`; this keeps the plan's rows in memory and
changes them only through those functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session

from agent.executor.writes import Outcome, Write
from storage import repositories as repo
from storage.db import Database

Now = Callable[[], datetime]
T = TypeVar("T")
# Runs the ledger's database work: `Database.run`, or a lease holder's `Heartbeat.persist`.
Persist = Callable[[Callable[[Session], T]], Awaitable[T]]


@dataclass(frozen=True)
class Claim:
    """How claiming a phase's writes went."""

    ours: list[Write]  # claimed by this run: send them
    done_meanwhile: list[tuple[Write, Outcome]]  # completed by another run since we read
    unknown: list[Write]  # pending from another run: look them up, never send blindly


class Ledger:
    """The ledger rows of one plan, read once and kept up to date by this run's claims."""

    def __init__(
        self,
        persist: Persist[Any],
        plan_id: str,
        now: Now,
        entries: dict[str, repo.LedgerEntry],
    ) -> None:
        self.persist = persist
        self.plan_id = plan_id
        self.now = now
        self._entries = entries

    @classmethod
    async def load(
        cls, db: Database, plan_id: str, now: Now, *, persist: Persist[Any] | None = None
    ) -> Ledger:
        """The plan's rows; `persist` (default `db.run`) runs every later claim and completion."""
        persist = persist or db.run
        entries = await persist(lambda s: repo.ledger_for_plan(s, plan_id))
        return cls(persist, plan_id, now, entries)

    def entry(self, write: Write) -> repo.LedgerEntry | None:
        return self._entries.get(write.key)

    def is_new(self, write: Write) -> bool:
        return write.key not in self._entries

    def is_done(self, write: Write) -> bool:
        entry = self._entries.get(write.key)
        return entry is not None and entry.done

    def is_pending(self, write: Write) -> bool:
        """Claimed but not completed: its outcome is unknown."""
        entry = self._entries.get(write.key)
        return entry is not None and not entry.done

    def recorded(self, write: Write) -> Outcome | None:
        """What the ledger says a done write created, or None."""
        entry = self._entries.get(write.key)
        if entry is None or not entry.done or entry.taiga_id is None:
            return None
        return Outcome(id=entry.taiga_id, ref=entry.taiga_ref)

    async def claim(self, fresh: Sequence[Write], resend: Sequence[Write], actor: int) -> Claim:
        """Mark a phase's writes pending in ONE transaction before any is sent: insert the fresh
        ones, restamp the pending ones about to be sent again with this sender. Each row records
        the `external_reference` its attempt sends."""
        if not fresh and not resend:
            return Claim(ours=[], done_meanwhile=[], unknown=[])
        now = self.now()
        references = {
            write.key: reference
            for write in [*fresh, *resend]
            if (reference := write.reference(self.plan_id)) is not None
        }

        def claim(session: Session) -> tuple[dict[str, repo.LedgerEntry], list[repo.LedgerEntry]]:
            common: dict[str, Any] = {
                "plan_id": self.plan_id, "now": now, "actor": actor, "references": references,
            }  # fmt: skip
            claimed = repo.claim_actions(session, action_keys=[w.key for w in fresh], **common)
            retaken = repo.retake_actions(session, action_keys=[w.key for w in resend], **common)
            return claimed, retaken

        claimed, retaken = await self.persist(claim)
        for row in [*claimed.values(), *retaken]:
            self._entries[row.action_key] = row
        ours: list[Write] = []
        done_meanwhile: list[tuple[Write, Outcome]] = []
        unknown: list[Write] = []
        for write in fresh:
            row = claimed[write.key]
            if row.claimed_now:
                ours.append(write)
            elif row.done and row.taiga_id is not None:
                done_meanwhile.append((write, Outcome(id=row.taiga_id, ref=row.taiga_ref)))
            else:
                unknown.append(write)
        retaken_keys = {row.action_key for row in retaken}
        ours += [w for w in resend if w.key in retaken_keys]  # unless completed meanwhile
        return Claim(ours=ours, done_meanwhile=done_meanwhile, unknown=unknown)

    async def complete(self, write: Write, outcome: Outcome) -> None:
        now = self.now()
        self._entries[write.key] = await self.persist(
            lambda s: repo.complete_action(
                s,
                plan_id=self.plan_id,
                action_key=write.key,
                taiga_id=outcome.id,
                taiga_ref=outcome.ref,
                now=now,
                taiga_version=outcome.version,
                previous_milestone_id=outcome.previous_milestone_id,
            )
        )
