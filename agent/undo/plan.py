"""Undoing an applied plan: who may, until when, and the plan's state around one undo.

`undo_plan` checks the undo window (`PLAN_UNDO_MINUTES` after the apply finished) and the
user's delete and modify permissions (with their own Taiga session) before anything changes,
then moves the plan `done|partial|undo_partial -> undoing` (one compare-and-set, so a double
click undoes once; it holds the plan on a lease like an apply, and an undo whose lease lapsed
is taken over), deletes the tasks the plan
created, moves the stories it moved back, deletes the stories and then the sprint it created,
and moves it `undoing -> undone|undo_partial` with the report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from agent.executor.lease import DEFAULT_TIMING, Heartbeat, LeaseLost, LeaseTiming, take_plan
from agent.plan_rows import PlanSnapshot, load_plan
from agent.proposal import Action, Proposal, ProposedMove
from agent.undo.deletes import UNDO_PREFIX, Target, UndoRun, undo_key
from agent.undo.moves import move_back
from agent.undo.report import KEPT_NOT_CONFIRMED, UndoItem, UndoReport, stored_report, with_report
from storage import repositories as repo
from storage.db import Database
from storage.models import utcnow
from storage.plan_states import Transition
from taiga.client import TaigaSession

_INTERRUPTED = "Undo interrupted: {}"
# The permission each kind of created object needs to be deleted.
DELETE_PERMISSIONS = {"task": "delete_task", "story": "delete_us", "milestone": "delete_milestone"}
MOVE_BACK_PERMISSION = "modify_us"  # a story the plan moved goes back with a PATCH
_PERMISSIONS = {**DELETE_PERMISSIONS, "move": MOVE_BACK_PERMISSION}
_UNDOABLE = frozenset({"done", "partial", "undo_partial"})


class UndoRefused(Exception):
    """The undo cannot start; the message is a plain sentence for the user."""


async def undo_plan(
    *,
    db: Database,
    plan_id: str,
    taiga: TaigaSession,
    window: timedelta,
    now: Callable[[], datetime] = utcnow,
    lease: LeaseTiming = DEFAULT_TIMING,
    actor_id: int | None = None,
) -> UndoReport:
    """Delete what the plan created and move back what it moved with the user's session
    `taiga`, exactly once.

    Returns the stored report when the plan is already undone, and a report in state `undoing`
    (deleting nothing) while another undo of it runs. Raises `UndoRefused` when the plan cannot
    be undone (unknown, not applied, past the window, no delete or modify permission)."""
    plan = await load_plan(db, plan_id)
    if plan is None:
        raise UndoRefused(f"No plan {plan_id}.")
    if plan.state == "undone" and (stored := stored_report(plan.result)) is not None:
        return stored
    if plan.state in _UNDOABLE:
        entries = await db.run(lambda s: repo.ledger_for_plan(s, plan_id))
        _check_window(plan, entries, window, now())
        await _check_permissions(taiga, plan.project_id, _targets(plan, entries)[0])
    heartbeat = await take_plan(
        db, plan_id, start=Transition.START_UNDO, take_over=Transition.TAKE_OVER_UNDO,
        timing=lease, now=now,
    )  # fmt: skip
    if heartbeat is None:
        latest = await load_plan(db, plan_id)
        return _not_undone(latest or plan)
    async with heartbeat:
        try:
            report = await _undo(db, plan_id, taiga, heartbeat, actor_id)
        except LeaseLost:
            return _not_undone(await load_plan(db, plan_id) or plan)
        except BaseException as error:  # never leave the plan stuck in undoing
            await heartbeat.leave(
                Transition.FINISH_UNDO_PARTIAL, error=_INTERRUPTED.format(type(error).__name__)
            )
            raise
        latest = await load_plan(db, plan_id)
        await heartbeat.leave(
            Transition.FINISH_UNDO_PARTIAL if report.failed else Transition.FINISH_UNDO,
            result=with_report(latest.result if latest else plan.result, report),
            error=f"{len(report.failed)} item(s) not undone yet." if report.failed else None,
        )
    return report


async def _undo(
    db: Database, plan_id: str, taiga: TaigaSession, heartbeat: Heartbeat, actor_id: int | None
) -> UndoReport:
    """Delete and move back as the lease holder; the report of what became of each item."""
    # Read again now that this run holds the plan: an earlier run may have finished rows.
    plan = await load_plan(db, plan_id)
    assert plan is not None
    entries = await db.run(lambda s: repo.ledger_for_plan(s, plan_id))
    targets, unconfirmed = _targets(plan, entries)
    actor = actor_id if actor_id is not None else (await taiga.me()).id
    run = UndoRun(db, plan_id, plan.project_id, taiga, heartbeat.now, actor, entries, heartbeat)
    await _remove_all(run, targets)
    return UndoReport(
        plan_id=plan_id,
        state="undo_partial" if run.failed else "undone",
        removed=run.removed,
        kept=[*unconfirmed, *run.kept],
        moved_back=run.moved_back,
        gone=run.gone,
        failed=run.failed,
    )


async def _remove_all(run: UndoRun, targets: list[Target]) -> None:
    """Tasks first, then stories (deleting a story deletes its tasks), then the sprint; moved
    stories go back before it (one still in the sprint would keep it)."""
    for target in targets:
        if target.kind == "task":
            await run.remove_task(target)
    for target in targets:
        if target.kind == "move":
            await move_back(run, target)
    for target in targets:
        if target.kind == "story":
            await run.remove_story(target)
    for target in targets:
        if target.kind == "milestone":
            await run.remove_sprint(target)


def _targets(
    plan: PlanSnapshot, entries: dict[str, repo.LedgerEntry]
) -> tuple[list[Target], list[UndoItem]]:
    """The objects the plan created or moved (done ledger rows), and the creations Taiga never
    confirmed. A move that is not done was not made (or not known to be): nothing to undo."""
    actions: dict[str, Action] = {}
    if plan.proposal is not None:
        actions = {a.key: a for a in Proposal.model_validate(plan.proposal).actions()}
    targets: list[Target] = []
    unconfirmed: list[UndoItem] = []
    for key, entry in entries.items():
        action = actions.get(key)
        if key.startswith(UNDO_PREFIX) or action is None:
            continue
        if action.move is not None:
            if entry.done and entry.taiga_id is not None:
                targets.append(_moved_story(action.move, entry))
            continue
        subject = _subject(action)
        if not entry.done or entry.taiga_id is None:
            if undo_key(key) not in entries:
                unconfirmed.append(
                    UndoItem(
                        kind=action.kind, action_key=key, subject=subject, reason=KEPT_NOT_CONFIRMED
                    )
                )
            continue
        targets.append(
            Target(key, action.kind, subject, entry.taiga_id, entry.taiga_ref, entry.taiga_version)
        )
    return targets, unconfirmed


def _moved_story(move: ProposedMove, entry: repo.LedgerEntry) -> Target:
    assert entry.taiga_id is not None
    return Target(
        key=entry.action_key,
        kind="move",
        subject=move.subject,
        taiga_id=entry.taiga_id,
        ref=entry.taiga_ref,
        version=entry.taiga_version,
        back_to=entry.previous_milestone_id,
        back_to_name=move.from_sprint or "the backlog",
    )


def _subject(action: Action) -> str:
    if action.milestone is not None:
        return action.milestone.name
    if action.story is not None:
        return action.story.subject
    return action.task.subject if action.task is not None else action.key


def _check_window(
    plan: PlanSnapshot, entries: dict[str, repo.LedgerEntry], window: timedelta, now: datetime
) -> None:
    if plan.state == "undo_partial":
        return  # finishing an undo that already started
    finished = [
        e.done_at
        for k, e in entries.items()
        if e.done_at is not None and not k.startswith(UNDO_PREFIX)
    ]
    if not finished:
        raise UndoRefused("This plan created nothing in Taiga, so there is nothing to undo.")
    if now - max(finished) > window:
        minutes = f"{window.total_seconds() / 60:g}"
        raise UndoRefused(
            f"Undo is only possible for {minutes} minutes after a plan is applied; "
            "delete the items in Taiga by hand."
        )


async def _check_permissions(taiga: TaigaSession, project_id: int, targets: list[Target]) -> None:
    needed = {_PERMISSIONS[t.kind] for t in targets}
    if not needed:
        return
    project = await taiga.get_project(project_id)
    missing = sorted(needed - project.my_permissions)
    if missing:
        raise UndoRefused(
            f"You cannot undo this plan: your role in {project.name} lacks "
            f"{', '.join(missing)}. Nothing was changed."
        )


def _not_undone(plan: PlanSnapshot) -> UndoReport:
    """Another undo holds the plan, or it is in a state that cannot be undone."""
    if plan.state == "undone" and (stored := stored_report(plan.result)) is not None:
        return stored
    if plan.state == "undoing":
        return UndoReport(plan_id=plan.id, state="undoing")
    raise UndoRefused(_not_undoable_sentence(plan.state))


def _not_undoable_sentence(state: str) -> str:
    if state in {"approved", "executing"}:
        return "This plan is being applied right now; undo it once that has finished."
    return f"This plan is {state}: nothing of it was written to Taiga, so there is nothing to undo."
