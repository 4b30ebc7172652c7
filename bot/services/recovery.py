"""The recovery sweep: finishes what a restart interrupted and expires forgotten proposals.

One round at start-up, then whenever the next plan falls due (a lease ends, an approval passes
its grace) and at least every `interval` (10 s); at most `batch` plans a round, least recently
touched first:
- an `approved` plan untouched for `approved_grace` (its apply never started: one lease length),
  an `executing` plan whose lease has lapsed (its process died; a live run renews its lease
  however slow Taiga is) and a `partial` plan that a shutdown cancelled mid-apply are applied
  again with the Taiga link of the person who approved them;
  the result replaces "Applying the plan…" in the thread. Each resume goes through `apply_plan`,
  whose compare-and-set lets exactly one run write, so replicas sweeping at once write once.
- an approver whose link is gone (or dead) gets the message turned into a Retry with a plain
  sentence naming who must retry; the plan becomes `partial`, so the sweep leaves it alone.
- an `undoing` plan whose lease has lapsed (a restart cut its undo short) is undone
  again with the approver's link (`agent.undo` takes it over once and deletes nothing twice);
  without a link it shows Retry undo for the approver.
- a `proposed` plan past `expires_at` is expired and its message says so.
- a `drafting` plan older than the planning deadline plus a lease (its process died mid-draft)
  fails with a sentence in its thread, instead of "Drafting…" forever.
A failure is logged with the plan id and never stops the round or the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from agent.executor import INTERRUPTED_BY_SHUTDOWN
from agent.executor.lease import LeaseTiming
from agent.settings import Settings
from bot import blocks
from bot.services import decisions, undoing
from bot.services.core import Services
from bot.services.errors import explain, is_link_expired, log_failure
from bot.services.slack_io import update
from storage import repositories as repo
from storage.models import Plan
from storage.plan_states import Transition
from taiga.client import Clock

logger = logging.getLogger(__name__)

# At most this long between rounds: a plan stranded by another replica (whose lease this one
# has not seen yet) is noticed within it after its lease lapses.
DEFAULT_INTERVAL_SECONDS = 10.0
# The shortest pause between rounds, however soon the next plan falls due.
MIN_PAUSE_SECONDS = 1.0
# After a round that failed (the database unreachable), try again this soon.
FAILED_ROUND_PAUSE_SECONDS = 5.0
DEFAULT_BATCH = 20
RESTARTED = "Taiga Planner restarted while applying this plan and could not finish it"
DRAFT_LOST = (
    "Taiga Planner restarted while drafting this plan, so it was not finished. Nothing was "
    "written to Taiga. Mention me again (or run /taiga plan) to draft it anew."
)


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    interval: float = DEFAULT_INTERVAL_SECONDS
    # An approved plan's apply starts within a second; one still `approved` a lease length
    # later never started.
    approved_grace: timedelta = LeaseTiming().duration
    # A draft still `drafting` this long after it started outlived its deadline: it died.
    drafting_limit: timedelta = timedelta(minutes=2)
    batch: int = DEFAULT_BATCH

    @classmethod
    def from_settings(cls, settings: Settings) -> SweepPolicy:
        grace = LeaseTiming.from_settings(settings).duration
        deadline = timedelta(seconds=settings.agent_deadline_seconds)
        return cls(approved_grace=grace, drafting_limit=deadline + grace)


@dataclass(slots=True)
class SweepReport:
    """Plan ids by what one round did with them."""

    resumed: list[str] = field(default_factory=list)  # applied by this round (done or partial)
    busy: list[str] = field(default_factory=list)  # another run holds it: nothing written here
    parked: list[str] = field(default_factory=list)  # shown with Retry (link gone or apply failed)
    expired: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # drafts that died, shown as failed

    def full(self, batch: int) -> bool:
        """The round handled a whole batch: more plans may be due right now."""
        handled = [self.resumed, self.busy, self.parked, self.expired, self.failed, self.abandoned]
        return sum(map(len, handled)) >= batch
    failed: list[str] = field(default_factory=list)  # logged; tried again next round


class RecoverySweep:
    """One per process; `start()` runs rounds every `policy.interval` on `clock` (the runtime's)."""

    def __init__(
        self, services: Services, policy: SweepPolicy | None = None, *, clock: Clock | None = None
    ) -> None:
        self.services = services
        self.policy = policy or SweepPolicy.from_settings(services.settings)
        self.clock = clock or services.clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the periodic sweep (idempotent); the first round runs at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run_forever(), name="recovery-sweep")

    async def aclose(self) -> None:
        """Stop the sweep; a resume it was running is interrupted and resumed after restart."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run_forever(self) -> None:
        while True:
            pause = min(self.policy.interval, FAILED_ROUND_PAUSE_SECONDS)
            try:
                report = await self.run_round()
                pause = MIN_PAUSE_SECONDS if report.full(self.policy.batch) else await self._pause()
            except Exception as error:  # e.g. the database is unreachable for a moment
                log_failure("recovery sweep round failed", error)
            await self.clock.sleep(pause)

    async def _pause(self) -> float:
        """Seconds until the next round: when the next plan falls due, within bounds."""
        policy = self.policy
        due = await self.services.db.run(
            lambda s: repo.next_sweep_due(
                s, approved_grace=policy.approved_grace, drafting_limit=policy.drafting_limit,
                interrupted_error=INTERRUPTED_BY_SHUTDOWN,
            )
        )
        wait = (due - self.services.now()).total_seconds() if due is not None else 0.0
        if wait <= 0:  # nothing due later, or due already and left (failed): the usual interval
            return self.policy.interval
        return min(self.policy.interval, max(MIN_PAUSE_SECONDS, wait))

    async def run_round(self) -> SweepReport:
        """One bounded round over the plans due now."""
        report = SweepReport()
        for plan in await self._due():
            try:
                await self._handle(plan, report)
            except Exception as error:
                log_failure("recovery sweep could not handle the plan", error, plan_id=plan.id)
                report.failed.append(plan.id)
        return report

    async def _due(self) -> list[Plan]:
        now, policy = self.services.now(), self.policy
        return await self.services.db.run(
            lambda s: repo.plans_to_sweep(
                s,
                approved_before=now - policy.approved_grace,
                lapsed_by=now,
                expired_by=now,
                interrupted_error=INTERRUPTED_BY_SHUTDOWN,
                drafting_before=now - policy.drafting_limit,
                limit=policy.batch,
            )
        )

    async def _handle(self, plan: Plan, report: SweepReport) -> None:
        if plan.state == "proposed":
            await decisions.expire_proposal(self.services, plan)
            report.expired.append(plan.id)
        elif plan.state == "drafting":
            await self._abandon_draft(plan, report)
        elif plan.state == "undoing":
            await self._resume_undo(plan, report)
        else:
            await self._resume(plan, report)

    async def _abandon_draft(self, plan: Plan, report: SweepReport) -> None:
        def give_up(session: Session) -> bool:
            """Fail the draft and free its claim, so asking again works at once."""
            moved = repo.transition_plan(
                session, plan_id=plan.id, transition=Transition.FAIL_DRAFT,
                expected_version=plan.version, error=DRAFT_LOST,
            )  # fmt: skip
            if moved:
                repo.release_drafting_in_thread(
                    session, team_id=plan.slack_team_id, channel_id=plan.slack_channel_id,
                    thread_ts=plan.slack_thread_ts,
                )  # fmt: skip
            return moved

        moved = await self.services.db.run(give_up)
        if not moved:  # its run finished after all
            report.busy.append(plan.id)
            return
        assert plan.slack_message_ts is not None
        message = blocks.error_blocks(DRAFT_LOST)
        await update(
            self.services.slack, channel=plan.slack_channel_id, ts=plan.slack_message_ts,
            **message.as_kwargs(),
        )  # fmt: skip
        report.abandoned.append(plan.id)

    async def _resume_undo(self, plan: Plan, report: SweepReport) -> None:
        approver = plan.decided_by or ""
        link = await self._link(plan.slack_team_id, approver) if approver else None
        if link is None:
            name = await decisions.display_name(self.services, approver) if approver else "someone"
            await self._park_undo(plan, name, report)
            return
        logger.info("plan %s: resuming its undo after a restart", plan.id)
        session = self.services.refresher.session(link)
        result = await undoing.undo_and_show(
            self.services, plan, session,
            undone_by=approver, actor_taiga_id=link.taiga_user_id, tell=None,
        )  # fmt: skip
        if result is None:
            report.failed.append(plan.id)
        elif result.state == "undoing":
            report.busy.append(plan.id)
        else:
            report.resumed.append(plan.id)

    async def _park_undo(self, plan: Plan, name: str, report: SweepReport) -> None:
        moved = await self.services.db.run(
            lambda s: repo.transition_plan(
                s, plan_id=plan.id, transition=Transition.PARK_UNDO, now=self.services.now(),
                expected_version=plan.version, error="Undo not resumed: no Taiga link.",
            )
        )
        if not moved:
            report.busy.append(plan.id)
            return
        sentence = (
            f"Taiga Planner restarted while undoing this plan and could not finish it: {name} is "
            "no longer linked to Taiga. They must link Taiga again with /taiga login, then press "
            "Retry undo."
        )
        await undoing.show_undo_retry(self.services, plan, sentence)
        report.parked.append(plan.id)

    async def _resume(self, plan: Plan, report: SweepReport) -> None:
        approver = plan.decided_by or plan.requester_slack_id or ""
        name = await decisions.display_name(self.services, approver) if approver else "someone"
        link = await self._link(plan.slack_team_id, approver) if approver else None
        if link is None:
            await self._park(plan, f"{name} is no longer linked to Taiga", name, report)
            return
        logger.info("plan %s: resuming (%s) after a restart", plan.id, plan.state)
        run = decisions.ApplyRun(
            actor=approver,
            actor_taiga_id=link.taiga_user_id,
            approver=approver,
            first_line=f"Resuming after a restart (approved by {name}); writing to Taiga…",
            explain_failure=lambda error: _failure_sentence(error, name, plan.project_slug),
            show_at_once=False,  # a replica that loses the race leaves the message alone
        )
        session = self.services.refresher.session(link)
        result = await decisions.apply_and_show(self.services, plan, session, run)
        if result is None:
            report.parked.append(plan.id)
        elif result.state == "executing":
            logger.info("plan %s: another run is applying it; left to that run", plan.id)
            report.busy.append(plan.id)
        else:
            report.resumed.append(plan.id)

    async def _link(self, team_id: str, user_id: str) -> repo.TaigaLinkView | None:
        cipher = self.services.cipher
        return await self.services.db.run(
            lambda s: repo.get_link(s, cipher=cipher, team_id=team_id, user_id=user_id)
        )

    async def _park(self, plan: Plan, why: str, name: str, report: SweepReport) -> None:
        """Move the plan (still as read) to `partial` and show who must retry; a plan that
        someone touched meanwhile is left to them."""
        moved = await self.services.db.run(
            lambda s: repo.transition_plan(
                s, plan_id=plan.id, transition=Transition.PARK, now=self.services.now(),
                expected_version=plan.version, error=f"Not resumed: {why}.",
            )
        )
        if not moved:
            report.busy.append(plan.id)
            return
        logger.warning("plan %s: not resumed after a restart: the approver's link is gone", plan.id)
        await decisions.show_retry(self.services, plan, _retry_sentence(why, name))
        report.parked.append(plan.id)


def _retry_sentence(why: str, name: str) -> str:
    return f"{RESTARTED}: {why}. {name} must link Taiga again with /taiga login, then press Retry."


def _failure_sentence(error: Exception, name: str, project: str) -> str:
    if is_link_expired(error):
        return _retry_sentence(f"the Taiga link of {name} has expired", name)
    return f"{RESTARTED}. {explain(error, project=project)} {name} can press Retry."
