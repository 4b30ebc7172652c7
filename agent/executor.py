"""Apply a stored, approved proposal to Taiga exactly once.

The executor writes exactly the actions recorded in `Plan.proposal`: the sprint first (if one is to
be created), then every story concurrently, then every task concurrently, with bounded concurrency.
Every write goes through the write ledger: a *pending* row is stored before the request is sent and
marked *done* with Taiga's id and ref afterwards. So a retry, a second approval or a restart never
writes twice: done actions are skipped, and an action whose outcome is unknown (a lost response, or
a pending row left by a crashed run) is first looked up in Taiga and adopted if it is there. A
lost response that the lookup does not find is not sent again in the same run (Taiga may still be
saving it): the row stays pending, the item is reported as not confirmed, and the next apply looks
again and creates it only if it is still missing. Lookups match the owner recorded on the row.

Plan states: the caller moves `proposed -> approved`; here `approved|partial -> executing` (one
conditional update, so only one apply runs), then `executing -> done|partial` with the result.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlmodel import Session

from agent.errors import GoneSinceProposal, describe
from agent.proposal import Proposal
from agent.wording import plural
from storage import repositories as repo
from storage.db import Database
from storage.models import Plan, utcnow
from storage.plan_states import Transition
from taiga import links
from taiga.client import TaigaSession
from taiga.errors import (
    ResponseLost,
    TaigaError,
    ValidationFailed,
)

log = logging.getLogger(__name__)

_INTERRUPTED = "Interrupted: {}"
# Stored as the plan's error when a shutdown cancels an apply; the bot's sweep resumes those.
INTERRUPTED_BY_SHUTDOWN = _INTERRUPTED.format(asyncio.CancelledError.__name__)

Progress = Callable[[str], Awaitable[None]]
Now = Callable[[], datetime]
ItemKind = Literal["milestone", "story", "task"]

DEFAULT_CONCURRENCY = 4
# Taiga's clock and ours may disagree a little; an object created this long before our attempt
# still counts as the result of that attempt when reconciling.
DEFAULT_CLOCK_SKEW = timedelta(minutes=2)
# An `executing` plan untouched for this long belongs to a run that died (crash, restart).
DEFAULT_STALE_AFTER = timedelta(minutes=15)

SKIPPED_NO_STORY = "skipped: its story was not created"
SKIPPED_NO_SPRINT = "skipped: the sprint was not created"
NOT_CONFIRMED = (
    "Taiga did not confirm this one; Retry checks Taiga first and creates it only if it is missing."
)


class PlanNotFound(LookupError):
    """No plan with this id."""


class PlanNotApproved(RuntimeError):
    """The plan is in a state that cannot be applied (not approved, rejected, expired, ...)."""

    def __init__(self, plan_id: str, state: str) -> None:
        super().__init__(f"Plan {plan_id} is {state}, so it cannot be applied.")
        self.plan_id = plan_id
        self.state = state


class CreatedItem(BaseModel):
    """One object that exists in Taiga because of this plan (created now or by an earlier run)."""

    kind: ItemKind
    action_key: str
    subject: str
    id: int
    ref: int | None = None
    url: str
    story_key: str | None = None  # tasks of a new story: its action key ("story:new-story-1")
    user_story_id: int | None = None  # tasks: the story they belong to
    reconciled: bool = False  # found in Taiga after an unknown outcome instead of created again


class FailedItem(BaseModel):
    """One action that is still missing, with a plain-language reason."""

    kind: ItemKind
    action_key: str
    subject: str
    reason: str
    skipped: bool = False  # not attempted because what it depends on is missing
    story_key: str | None = None
    user_story_id: int | None = None


class ExecutionResult(BaseModel):
    """What the plan has produced in Taiga so far, and what is still missing.

    `state` is `done` (complete), `partial` (some actions failed; applying again finishes only what
    is missing) or `executing` (another apply of this plan is running right now; nothing was
    written by this call and the lists show the progress recorded so far).
    """

    plan_id: str
    state: Literal["done", "partial", "executing"]
    complete: bool
    milestone_id: int | None = None
    milestone_name: str | None = None
    milestone_url: str | None = None
    created: list[CreatedItem] = []
    failed: list[FailedItem] = []

    def created_of(self, kind: ItemKind) -> list[CreatedItem]:
        return [item for item in self.created if item.kind == kind]


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class _Action:
    key: str
    kind: ItemKind
    subject: str
    description: str = ""
    tags: tuple[str, ...] = ()
    story_key: str | None = None  # task of a new story
    user_story_id: int | None = None  # task of an existing story


def _actions(proposal: Proposal) -> tuple[_Action | None, list[_Action], list[_Action]]:
    """The proposal's write actions (keys from `Proposal.actions()`): sprint, stories, tasks."""
    sprint: _Action | None = None
    stories: list[_Action] = []
    tasks: list[_Action] = []
    for action in proposal.actions():
        if action.kind == "milestone" and action.milestone is not None:
            sprint = _Action(key=action.key, kind="milestone", subject=action.milestone.name)
        elif action.kind == "story" and action.story is not None:
            story = action.story
            stories.append(
                _Action(
                    key=action.key,
                    kind="story",
                    subject=story.subject,
                    description=story.description,
                    tags=tuple(story.tags),
                )
            )
        elif action.kind == "task" and action.task is not None:
            task = action.task
            tasks.append(
                _Action(
                    key=action.key,
                    kind="task",
                    subject=task.subject,
                    description=task.description,
                    story_key=action.depends_on if task.user_story_id is None else None,
                    user_story_id=task.user_story_id,
                )
            )
    return sprint, stories, tasks


# --------------------------------------------------------------------------- plan state


@dataclass(frozen=True)
class _PlanSnapshot:
    id: str
    state: str
    version: int
    updated_at: datetime
    proposal: dict[str, Any] | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class _Entry:
    state: str
    taiga_id: int | None
    taiga_ref: int | None
    attempted_at: datetime
    actor: int | None  # the Taiga user whose session sent it (None: recorded before 0003)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _entry(row: repo.LedgerEntry) -> _Entry:
    return _Entry(
        state=row.state,
        taiga_id=row.taiga_id,
        taiga_ref=row.taiga_ref,
        attempted_at=_aware(row.attempted_at),
        actor=row.actor_taiga_id,
    )


def _snapshot(plan: Plan | None) -> _PlanSnapshot | None:
    if plan is None:
        return None
    return _PlanSnapshot(
        id=plan.id,
        state=plan.state,
        version=plan.version,
        updated_at=_aware(plan.updated_at),
        proposal=plan.proposal,
        result=plan.result,
    )


async def _load_plan(db: Database, plan_id: str) -> _PlanSnapshot | None:
    return await db.run(lambda s: _snapshot(repo.get_plan(s, plan_id)))


async def _load_ledger(db: Database, plan_id: str) -> dict[str, _Entry]:
    def read(session: Session) -> dict[str, _Entry]:
        return {key: _entry(row) for key, row in repo.ledger_for_plan(session, plan_id).items()}

    return await db.run(read)


async def _transition(
    db: Database, plan_id: str, transition: Transition, **changes: Any
) -> bool:
    return await db.run(
        lambda s: repo.transition_plan(s, plan_id=plan_id, transition=transition, **changes)
    )


async def _take_over_stale(db: Database, plan: _PlanSnapshot, now: datetime) -> bool:
    """Claim an `executing` plan whose run died, only if nobody touched it since we read it."""
    return await _transition(
        db, plan.id, Transition.TAKE_OVER_APPLY, expected_version=plan.version, updated_at=now
    )


# --------------------------------------------------------------------------- the run


class _Outcome(BaseModel):
    id: int
    ref: int | None = None
    reconciled: bool = False


@dataclass
class _Run:
    db: Database
    plan_id: str
    taiga: TaigaSession
    proposal: Proposal
    web_url: str
    ledger: dict[str, _Entry]
    semaphore: asyncio.Semaphore
    now: Now
    clock_skew: timedelta
    progress: Progress | None
    outcomes: dict[str, _Outcome] = field(default_factory=dict)
    failures: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key -> (reason, skipped)
    used_ids: dict[ItemKind, set[int]] = field(default_factory=dict)
    milestone_id: int | None = None
    milestone_slug: str | None = None
    actor_id: int | None = None  # the acting Taiga user, when the caller knows it
    _me_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # ----- helpers

    @property
    def project_id(self) -> int:
        return self.proposal.project.id

    async def report(self, message: str) -> None:
        if self.progress is None:
            return
        try:
            await self.progress(message)
        except Exception:  # progress is cosmetic; never let it break a write
            log.warning("progress callback failed", exc_info=True)

    async def me_id(self) -> int:
        """The acting Taiga user: as the caller passed it, else asked of Taiga once."""
        async with self._me_lock:
            if self.actor_id is None:
                self.actor_id = (await self.taiga.me()).id
            return self.actor_id

    def recorded(self, action: _Action) -> _Outcome | None:
        """What the ledger says a done action created, or None."""
        entry = self.ledger.get(action.key)
        if entry is None or entry.state != "done" or entry.taiga_id is None:
            return None
        return _Outcome(id=entry.taiga_id, ref=entry.taiga_ref)

    def remember(self, action: _Action, outcome: _Outcome) -> None:
        self.outcomes[action.key] = outcome
        self.used_ids.setdefault(action.kind, set()).add(outcome.id)

    def fail(self, action: _Action, reason: str, *, skipped: bool = False) -> None:
        self.failures[action.key] = (reason, skipped)

    async def claim_all(
        self, fresh: Sequence[_Action], resend: Sequence[_Action], actor: int
    ) -> tuple[list[_Action], list[_Action]]:
        """Mark a phase's writes pending in ONE transaction before any is sent: insert the fresh
        actions, restamp the pending ones about to be sent again with this sender.

        Returns (ours to send, recorded meanwhile by another run with an unknown outcome).
        """
        if not fresh and not resend:
            return [], []
        now = self.now()

        def claim(session: Session) -> tuple[dict[str, repo.LedgerEntry], list[repo.LedgerEntry]]:
            common: dict[str, Any] = {"plan_id": self.plan_id, "now": now, "actor": actor}
            claimed = repo.claim_actions(session, action_keys=[a.key for a in fresh], **common)
            retaken = repo.retake_actions(session, action_keys=[a.key for a in resend], **common)
            return claimed, retaken

        claimed, retaken = await self.db.run(claim)
        for row in [*claimed.values(), *retaken]:
            self.ledger[row.action_key] = _entry(row)
        ours: list[_Action] = []
        others: list[_Action] = []
        for action in fresh:
            row = claimed[action.key]
            if row.claimed_now:
                ours.append(action)
            elif row.done and row.taiga_id is not None:  # recorded by another run meanwhile
                self.remember(action, _Outcome(id=row.taiga_id, ref=row.taiga_ref))
            else:
                others.append(action)  # outcome unknown: look it up, never send blindly
        retaken_keys = {row.action_key for row in retaken}
        ours += [a for a in resend if a.key in retaken_keys]  # unless completed meanwhile
        return ours, others

    async def complete(self, action: _Action, outcome: _Outcome) -> None:
        now = self.now()
        await self.db.run(
            lambda s: repo.complete_action(
                s,
                plan_id=self.plan_id,
                action_key=action.key,
                taiga_id=outcome.id,
                taiga_ref=outcome.ref,
                now=now,
            )
        )
        self.ledger[action.key] = replace(
            self.ledger[action.key], state="done", taiga_id=outcome.id, taiga_ref=outcome.ref
        )
        self.remember(action, outcome)

    # ----- one phase: reconcile what is unknown, create the rest, look up lost responses

    async def run_phase(
        self,
        actions: Sequence[_Action],
        create: Callable[[_Action], Awaitable[_Outcome]],
        find: Callable[[Sequence[_Action]], Awaitable[dict[str, _Outcome]]],
        on_done: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        for action in actions:
            if (outcome := self.recorded(action)) is not None:
                self.remember(action, outcome)
        unknown = [a for a in actions if self._is_pending(a)]
        fresh = [a for a in actions if a.key not in self.ledger]
        if not unknown and not fresh:
            return
        try:
            actor = await self.me_id()  # recorded on each claim: Taiga makes them the owner
        except TaigaError as error:
            for action in [*unknown, *fresh]:
                self.fail(action, describe(error))
            return
        missing = await self._reconcile(unknown, find) if unknown else []
        ours, others = await self.claim_all(fresh, missing, actor)
        lost = others + await self._create_all(ours, create, on_done)
        if lost:
            # Look once. Not found is not proof: after a timeout Taiga may still be saving it, so
            # it stays pending and only the next apply (Retry) creates it if it is still missing.
            for action in await self._reconcile(lost, find):
                self.fail(action, NOT_CONFIRMED)

    def _is_pending(self, action: _Action) -> bool:
        entry = self.ledger.get(action.key)
        return entry is not None and entry.state != "done"

    async def _reconcile(
        self,
        actions: Sequence[_Action],
        find: Callable[[Sequence[_Action]], Awaitable[dict[str, _Outcome]]],
    ) -> list[_Action]:
        """Adopt what Taiga already has; return the actions still to be created."""
        try:
            found = await find(actions)
        except TaigaError as error:
            # Unknown outcome and no way to check: creating now could duplicate, so wait.
            for action in actions:
                self.fail(action, "could not check Taiga for it: " + describe(error))
            return []
        for action in actions:
            outcome = found.get(action.key)
            if outcome is not None:
                log.info("plan %s: adopted %s as Taiga id %s", self.plan_id, action.key, outcome.id)
                await self.complete(action, outcome)
        return [a for a in actions if a.key not in found]

    async def _create_all(
        self,
        actions: Sequence[_Action],
        create: Callable[[_Action], Awaitable[_Outcome]],
        on_done: Callable[[], Awaitable[None]] | None,
    ) -> list[_Action]:
        """Send the claimed actions, completing each in the ledger; returns the lost responses."""
        lost: list[_Action] = []

        async def one(action: _Action) -> None:
            async with self.semaphore:
                try:
                    outcome = await create(action)
                except ResponseLost:
                    lost.append(action)
                    return
                except TaigaError as error:
                    self.fail(action, describe(error))
                    return
                await self.complete(action, outcome)
            if on_done is not None:
                await on_done()

        # Let every write of the phase settle before an unexpected failure propagates: a sibling
        # still on the wire would otherwise land after the plan is marked partial, unrecorded.
        sends = (one(action) for action in actions)
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return lost

    # ----- candidate matching for reconciliation

    def _matches(self, action: _Action, candidate: Any, me: int) -> bool:
        """Same subject, owned by whoever sent our attempt (recorded on the ledger row; the acting
        user for rows from before that was recorded), created at/after it (minus skew)."""
        entry = self.ledger.get(action.key)
        since = (entry.attempted_at if entry else self.now()) - self.clock_skew
        owner = entry.actor if entry is not None and entry.actor is not None else me
        return (
            candidate.subject.strip() == action.subject.strip()
            and (candidate.owner is None or candidate.owner == owner)
            and _aware(candidate.created_date) >= since
        )

    def adopt_all(
        self,
        actions: Sequence[_Action],
        candidates_of: Callable[[_Action], Sequence[Any]],
        me: int,
    ) -> dict[str, _Outcome]:
        """Each action's match among its candidates, by action key (unmatched ones left out)."""
        found: dict[str, _Outcome] = {}
        for action in actions:
            outcome = self._adopt(action, candidates_of(action), me)
            if outcome is not None:
                found[action.key] = outcome
        return found

    def _adopt(self, action: _Action, candidates: Sequence[Any], me: int) -> _Outcome | None:
        """The first matching candidate not yet claimed by another action of this plan."""
        used = self.used_ids.setdefault(action.kind, set())
        for candidate in sorted(candidates, key=lambda c: c.id):
            if candidate.id in used:
                continue
            if self._matches(action, candidate, me):
                used.add(candidate.id)
                return _Outcome(id=candidate.id, ref=candidate.ref, reconciled=True)
        return None


# --------------------------------------------------------------------------- phases


async def _sprint_phase(run: _Run, action: _Action | None) -> bool:
    """Make sure the sprint exists; False when it could not be created."""
    milestone = run.proposal.milestone
    if milestone is None:
        return True  # no sprint: stories go to the backlog
    if action is None:
        run.milestone_id = milestone.existing_id
        run.milestone_slug = milestone.slug
        return True

    async def create(a: _Action) -> _Outcome:
        try:
            created = await run.taiga.create_milestone(run.project_id, a.subject, start, finish)
        except ValidationFailed as error:
            if "name" not in error.fields:
                raise
            existing = await run.taiga.get_milestone_by_name(run.project_id, milestone.name)
            if existing is None:
                raise
            run.milestone_slug = existing.slug
            return _Outcome(id=existing.id, reconciled=True)  # someone created it meanwhile
        run.milestone_slug = created.slug
        return _Outcome(id=created.id)

    async def find(actions: Sequence[_Action]) -> dict[str, _Outcome]:
        existing = await run.taiga.get_milestone_by_name(run.project_id, milestone.name)
        if existing is None:
            return {}
        run.milestone_slug = existing.slug
        return {actions[0].key: _Outcome(id=existing.id, reconciled=True)}

    if milestone.estimated_start is None or milestone.estimated_finish is None:
        run.fail(action, "the proposal gives no start and finish dates for the new sprint")
        return False
    start, finish = milestone.estimated_start, milestone.estimated_finish
    if not _is_done(run, action):
        await run.report(f"Creating sprint {milestone.name}…")
    await run.run_phase([action], create, find)
    outcome = run.outcomes.get(action.key)
    if outcome is None:
        return False
    run.milestone_id = outcome.id
    return True


async def _story_phase(run: _Run, stories: Sequence[_Action]) -> None:
    if not stories:
        return
    total = len(stories)
    counter = _Counter(sum(1 for s in stories if _is_done(run, s)))

    async def create(action: _Action) -> _Outcome:
        async with _sprint_must_exist(run):
            story = await run.taiga.create_user_story(
                run.project_id,
                action.subject,
                description=action.description,
                milestone_id=run.milestone_id,
                tags=list(action.tags) or None,
            )
        return _Outcome(id=story.id, ref=story.ref)

    async def find(actions: Sequence[_Action]) -> dict[str, _Outcome]:
        me = await run.me_id()
        existing = await run.taiga.list_user_stories(
            run.project_id, milestone_id=run.milestone_id, backlog=run.milestone_id is None
        )
        return run.adopt_all(actions, lambda _action: existing, me)

    async def on_done() -> None:
        await run.report(f"Created {counter.bump()}/{total} stories…")

    await run.report(f"Creating {total} {plural(total, 'story', 'stories')}…")
    await run.run_phase(stories, create, find, on_done)


async def _task_phase(run: _Run, tasks: Sequence[_Action]) -> None:
    ready: list[_Action] = []
    for task in tasks:
        if task.story_key is not None and task.story_key not in run.outcomes:
            run.fail(task, SKIPPED_NO_STORY, skipped=True)
        else:
            ready.append(task)
    if not ready:
        return
    total = len(ready)
    counter = _Counter(sum(1 for t in ready if _is_done(run, t)))

    def story_id(action: _Action) -> int | None:
        if action.story_key is not None:
            return run.outcomes[action.story_key].id
        return action.user_story_id

    async def create(action: _Action) -> _Outcome:
        async with _sprint_must_exist(run):
            task = await run.taiga.create_task(
                run.project_id,
                action.subject,
                user_story_id=story_id(action),
                milestone_id=run.milestone_id,
                description=action.description,
            )
        return _Outcome(id=task.id, ref=task.ref)

    async def find(actions: Sequence[_Action]) -> dict[str, _Outcome]:
        me = await run.me_id()
        if run.milestone_id is not None:
            existing = await run.taiga.list_tasks(
                project_id=run.project_id, milestone_id=run.milestone_id
            )
        else:
            existing = []
            for sid in {story_id(a) for a in actions}:
                existing += await run.taiga.list_tasks(user_story_id=sid)
        return run.adopt_all(
            actions, lambda action: [t for t in existing if t.user_story == story_id(action)], me
        )

    async def on_done() -> None:
        await run.report(f"Created {counter.bump()}/{total} tasks…")

    await run.report(f"Creating {total} {plural(total, 'task', 'tasks')}…")
    await run.run_phase(ready, create, find, on_done)


@asynccontextmanager
async def _sprint_must_exist(run: _Run) -> AsyncIterator[None]:
    """Taiga's 'Invalid pk' for the sprint (deleted since the plan was made) as a plain error."""
    try:
        yield
    except ValidationFailed as error:
        if "milestone" not in error.fields or run.proposal.milestone is None:
            raise
        name = run.proposal.milestone.name
        raise GoneSinceProposal(
            f"Taiga could not find sprint {name}: it was deleted in Taiga after the plan was made, "
            "so plan again."
        ) from None


@dataclass
class _Counter:
    value: int = 0

    def bump(self) -> int:
        self.value += 1
        return self.value


def _is_done(run: _Run, action: _Action) -> bool:
    entry = run.ledger.get(action.key)
    return entry is not None and entry.state == "done"



# --------------------------------------------------------------------------- results


def _build_result(
    run: _Run,
    sprint: _Action | None,
    stories: Sequence[_Action],
    tasks: Sequence[_Action],
    state: Literal["done", "partial", "executing"],
) -> ExecutionResult:
    project_slug = run.proposal.project.slug
    created: list[CreatedItem] = []
    failed: list[FailedItem] = []
    milestone = run.proposal.milestone
    milestone_url = (
        links.sprint_url(run.web_url, project_slug, run.milestone_slug)
        if run.milestone_slug
        else None
    )
    for action in [*([sprint] if sprint else []), *stories, *tasks]:
        outcome = run.outcomes.get(action.key)
        story_id = action.user_story_id
        if action.story_key is not None and action.story_key in run.outcomes:
            story_id = run.outcomes[action.story_key].id
        if outcome is not None:
            created.append(
                CreatedItem(
                    kind=action.kind,
                    action_key=action.key,
                    subject=action.subject,
                    id=outcome.id,
                    ref=outcome.ref,
                    url=_url(run, action.kind, outcome.ref, milestone_url),
                    story_key=action.story_key,
                    user_story_id=story_id if action.kind == "task" else None,
                    reconciled=outcome.reconciled,
                )
            )
            continue
        reason, skipped = run.failures.get(action.key, ("not attempted yet", True))
        failed.append(
            FailedItem(
                kind=action.kind,
                action_key=action.key,
                subject=action.subject,
                reason=reason,
                skipped=skipped,
                story_key=action.story_key,
                user_story_id=story_id if action.kind == "task" else None,
            )
        )
    complete = not failed and state != "executing"
    return ExecutionResult(
        plan_id=run.plan_id,
        state=state if state == "executing" else ("done" if complete else "partial"),
        complete=complete,
        milestone_id=run.milestone_id,
        milestone_name=milestone.name if milestone else None,
        milestone_url=milestone_url,
        created=created,
        failed=failed,
    )


def _url(run: _Run, kind: ItemKind, ref: int | None, milestone_url: str | None) -> str:
    slug = run.proposal.project.slug
    if kind == "milestone":
        return milestone_url or f"{run.web_url.rstrip('/')}/project/{slug}/taskboard"
    if ref is None:
        return f"{run.web_url.rstrip('/')}/project/{slug}"
    if kind == "story":
        return links.story_url(run.web_url, slug, ref)
    return links.task_url(run.web_url, slug, ref)


# --------------------------------------------------------------------------- entry point


async def record_approved_plan(
    db: Database,
    proposal: Proposal,
    *,
    minutes: str,
    decided_by: str,
    slack_team_id: str = "",
    slack_channel_id: str = "",
    slack_thread_ts: str = "",
    idempotency_key: str | None = None,
    request_digest: str | None = None,
) -> str:
    """Store a plan that is approved as it is proposed (HTTP API, CLI); returns its id.

    It goes `proposed -> approved` like any plan, so `apply_plan` and its ledger treat it the same.
    Raises `storage.repositories.IdempotencyKeyTaken` if another plan holds `idempotency_key`.
    """
    digest = hashlib.sha256(minutes.encode("utf-8")).hexdigest()

    def store(session: Session) -> str:
        plan = repo.create_plan(
            session,
            slack_team_id=slack_team_id,
            slack_channel_id=slack_channel_id,
            slack_thread_ts=slack_thread_ts,
            project_id=proposal.project.id,
            project_slug=proposal.project.slug,
            target_sprint=proposal.target_sprint,
            minutes_digest=digest,
            state="proposed",
            proposal=proposal.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            request_digest=request_digest,
        )
        repo.transition_plan(
            session, plan_id=plan.id, transition=Transition.APPROVE, decided_by=decided_by
        )
        return plan.id

    return await db.run(store)


async def apply_plan(
    *,
    db: Database,
    plan_id: str,
    taiga: TaigaSession,
    web_url: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    now: Now = utcnow,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    actor_id: int | None = None,
) -> ExecutionResult:
    """Apply the plan's stored proposal with the acting user's Taiga session, exactly once.

    `actor_id` is that session's Taiga user id when the caller knows it (a Slack link stores
    it); without it the executor asks Taiga (`users/me`) once, when it first needs it.

    Returns the stored result when the plan is already done, and a result in state `executing`
    (writing nothing) when another apply of the same plan is running. Raises `PlanNotFound`, or
    `PlanNotApproved` for a plan that was never approved (or was rejected/expired).
    """
    plan = await _load_plan(db, plan_id)
    if plan is None:
        raise PlanNotFound(f"No plan {plan_id}.")
    if plan.state == "done" and plan.result is not None:
        return ExecutionResult.model_validate(plan.result)
    moved = await _transition(db, plan_id, Transition.START_APPLY)
    if not moved:
        plan = await _load_plan(db, plan_id)
        assert plan is not None
        if plan.state == "executing" and now() - plan.updated_at >= stale_after:
            moved = await _take_over_stale(db, plan, now())
            if moved:
                log.warning("plan %s: taking over a run that stopped without finishing", plan_id)
        if not moved:
            return await _not_applied(db, plan, taiga, web_url, now, clock_skew)
    try:
        if plan.proposal is None:
            raise PlanNotApproved(plan_id, "empty")
        proposal = Proposal.model_validate(plan.proposal)
        run = _Run(
            db=db,
            plan_id=plan_id,
            taiga=taiga,
            proposal=proposal,
            web_url=web_url,
            ledger=await _load_ledger(db, plan_id),
            semaphore=asyncio.Semaphore(max(1, concurrency)),
            now=now,
            clock_skew=clock_skew,
            progress=progress,
            actor_id=actor_id,
        )
        result = await _execute(run, *_actions(proposal))
    except BaseException as error:  # never leave the plan stuck in executing
        await _transition(
            db,
            plan_id,
            Transition.FINISH_APPLY_PARTIAL,
            error=_INTERRUPTED.format(type(error).__name__),
        )
        raise
    stored = await _transition(
        db,
        plan_id,
        Transition.FINISH_APPLY if result.complete else Transition.FINISH_APPLY_PARTIAL,
        result=result.model_dump(mode="json"),
        error=None if result.complete else f"{len(result.failed)} item(s) not created.",
    )
    if not stored:
        log.warning("plan %s: state changed while executing; result not stored", plan_id)
    return result


async def _execute(
    run: _Run, sprint: _Action | None, stories: Sequence[_Action], tasks: Sequence[_Action]
) -> ExecutionResult:
    if await _sprint_phase(run, sprint):
        if run.milestone_id is not None and run.milestone_slug is None:
            await _fill_milestone_slug(run)
        await _story_phase(run, stories)
        await _task_phase(run, tasks)
    else:
        for action in [*stories, *tasks]:
            run.fail(action, SKIPPED_NO_SPRINT, skipped=True)
    return _build_result(run, sprint, stories, tasks, "partial")


async def _fill_milestone_slug(run: _Run) -> None:
    assert run.milestone_id is not None
    try:
        run.milestone_slug = (await run.taiga.get_milestone(run.milestone_id)).slug
    except TaigaError:
        log.info("could not read the slug of milestone %s", run.milestone_id)


async def _not_applied(
    db: Database,
    plan: _PlanSnapshot,
    taiga: TaigaSession,
    web_url: str,
    now: Now,
    clock_skew: timedelta,
) -> ExecutionResult:
    """Another apply holds the plan (or it finished meanwhile): report, write nothing."""
    if plan.state == "done" and plan.result is not None:
        return ExecutionResult.model_validate(plan.result)
    if plan.state != "executing" or plan.proposal is None:
        raise PlanNotApproved(plan.id, plan.state)
    proposal = Proposal.model_validate(plan.proposal)
    run = _Run(
        db=db,
        plan_id=plan.id,
        taiga=taiga,
        proposal=proposal,
        web_url=web_url,
        ledger=await _load_ledger(db, plan.id),
        semaphore=asyncio.Semaphore(1),
        now=now,
        clock_skew=clock_skew,
        progress=None,
    )
    if proposal.milestone is not None:
        run.milestone_id = proposal.milestone.existing_id
        run.milestone_slug = proposal.milestone.slug
    sprint, stories, tasks = _actions(proposal)
    for action in [*([sprint] if sprint else []), *stories, *tasks]:
        if (outcome := run.recorded(action)) is not None:
            run.remember(action, outcome)
            if action.kind == "milestone":
                run.milestone_id = outcome.id
        else:
            run.fail(action, "in progress: another apply of this plan is running", skipped=True)
    return _build_result(run, sprint, stories, tasks, "executing")
