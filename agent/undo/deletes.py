"""Deleting what one plan created, item by item, each exactly once through the write ledger.

Every item is read first: one that is gone (404) is not deleted again, one whose `version` is
not the one recorded at creation was changed by someone and is kept (DELETE takes no version,
so the read is the only check). Otherwise `undo:<action key>` is claimed pending in the ledger,
the DELETE is sent and the row completed done. A DELETE answered 403 or lost is followed by a
read: Taiga answers 403, not 404, to a DELETE of an object that is already gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from agent.errors import describe
from agent.executor.lease import Heartbeat
from agent.proposal import ActionKind
from agent.undo.report import (
    KEPT_CHANGED,
    KEPT_HAS_TASKS,
    KEPT_NO_VERSION,
    KEPT_SPRINT_NOT_EMPTY,
    UndoItem,
)
from storage import repositories as repo
from storage.db import Database
from taiga.client import TaigaSession
from taiga.errors import Forbidden, NotFound, ResponseLost, TaigaError

UNDO_PREFIX = "undo:"


def undo_key(action_key: str) -> str:
    """The ledger key of the delete that undoes the write `action_key`."""
    return UNDO_PREFIX + action_key


@dataclass(frozen=True)
class Target:
    """One object the plan created, as its ledger row recorded it."""

    key: str
    kind: ActionKind
    subject: str
    taiga_id: int
    ref: int | None
    version: int | None  # right after our write; None on rows from before undo existed
    back_to: int | None = None  # a moved story's sprint before the move (None: the backlog)
    back_to_name: str = "the backlog"

    def item(self, reason: str = "") -> UndoItem:
        return UndoItem(
            kind=self.kind,
            action_key=self.key,
            subject=self.subject,
            taiga_id=self.taiga_id,
            ref=self.ref,
            reason=reason,
        )


@dataclass
class UndoRun:
    """One undo of one plan: its Taiga session, its ledger rows, and what became of each item."""

    db: Database
    plan_id: str
    project_id: int
    taiga: TaigaSession
    now: Callable[[], datetime]
    actor: int  # the acting Taiga user, recorded on each claim
    entries: dict[str, repo.LedgerEntry]
    lease: Heartbeat | None = None  # the undo's hold on the plan: no delete once it is lost
    removed: list[UndoItem] = field(default_factory=list)
    moved_back: list[UndoItem] = field(default_factory=list)
    kept: list[UndoItem] = field(default_factory=list)
    gone: list[UndoItem] = field(default_factory=list)
    failed: list[UndoItem] = field(default_factory=list)

    async def remove_task(self, target: Target) -> None:
        await self._remove(target, self._task_version, self.taiga.delete_task)

    async def remove_story(self, target: Target) -> None:
        await self._remove(target, self._story_version, self.taiga.delete_user_story)

    async def remove_sprint(self, target: Target) -> None:
        await self._remove(target, self._sprint_blocker, self.taiga.delete_milestone)

    # -- one item

    async def _remove(
        self,
        target: Target,
        blocker: Callable[[Target], Awaitable[str | None]],
        delete: Callable[[int], Awaitable[None]],
    ) -> None:
        """Delete `target` unless it is gone, changed or still in use (`blocker` reads it and
        says why it must stay, or raises NotFound)."""
        row = self.entries.get(undo_key(target.key))
        if row is not None and row.done:
            self.removed.append(target.item())
            return
        try:
            reason = await blocker(target)
        except NotFound:
            await self._gone(target, ours=row is not None)
            return
        except TaigaError as error:
            self.failed.append(target.item("could not read it in Taiga: " + describe(error)))
            return
        if reason is not None:
            self.kept.append(target.item(reason))
            return
        await self.claim(target)
        try:
            await delete(target.taiga_id)
        except (Forbidden, ResponseLost) as error:
            # 403 is also Taiga's answer to deleting what is already gone: only a read tells.
            if await self._is_gone(target, blocker):
                await self._complete(target)
            else:
                self.failed.append(target.item(describe(error)))
            return
        except TaigaError as error:
            self.failed.append(target.item(describe(error)))
            return
        await self._complete(target)

    async def _gone(self, target: Target, *, ours: bool) -> None:
        """Not in Taiga: removed by an earlier attempt of ours (claimed), else by someone."""
        if ours:
            await self._complete(target)
        else:
            self.gone.append(target.item("already deleted in Taiga"))

    async def _is_gone(
        self, target: Target, blocker: Callable[[Target], Awaitable[str | None]]
    ) -> bool:
        try:
            await blocker(target)
        except NotFound:
            return True
        except TaigaError:
            return False
        return False

    async def claim(self, target: Target) -> None:
        """Record the undo of `target` as pending before it is sent (raises `LeaseLost` once
        this run no longer holds the plan)."""
        if self.lease is not None:
            self.lease.check()
        key, now = undo_key(target.key), self.now()
        claimed = await self.db.run(
            lambda s: repo.claim_actions(
                s, plan_id=self.plan_id, action_keys=[key], now=now, actor=self.actor
            )
        )
        self.entries[key] = claimed[key]

    async def _complete(self, target: Target) -> None:
        await self.settle(target)
        self.removed.append(target.item())

    async def settle(self, target: Target, *, taiga_version: int | None = None) -> None:
        """Record the undo of `target` as done (claiming it first if no run did)."""
        key, now = undo_key(target.key), self.now()
        if key not in self.entries:
            await self.claim(target)
        self.entries[key] = await self.db.run(
            lambda s: repo.complete_action(
                s,
                plan_id=self.plan_id,
                action_key=key,
                taiga_id=target.taiga_id,
                taiga_ref=target.ref,
                now=now,
                taiga_version=taiga_version,
            )
        )

    # -- why an item must stay (each raises NotFound when it is gone)

    async def _task_version(self, target: Target) -> str | None:
        task = await self.taiga.get_task(target.taiga_id)
        return changed(target, task.version)

    async def _story_version(self, target: Target) -> str | None:
        story = await self.taiga.get_user_story(target.taiga_id)
        if (reason := changed(target, story.version)) is not None:
            return reason
        # Deleting a story deletes its tasks: keep it while it has any (someone's, or ours kept).
        if await self.taiga.list_tasks(user_story_id=target.taiga_id):
            return KEPT_HAS_TASKS
        return None

    async def _sprint_blocker(self, target: Target) -> str | None:
        sprint = await self.taiga.get_milestone(target.taiga_id)
        tasks = await self.taiga.list_tasks(project_id=self.project_id, milestone_id=sprint.id)
        if sprint.user_stories or tasks:
            return KEPT_SPRINT_NOT_EMPTY  # deleting it would move them to the backlog
        return None


def changed(target: Target, version: int | None) -> str | None:
    if target.version is None:
        return KEPT_NO_VERSION
    if version != target.version:
        return KEPT_CHANGED
    return None
