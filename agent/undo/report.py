"""What an undo did: the items it removed from Taiga, the stories it moved back, the ones it kept
and why, and the ones it could not undo yet. Stored with the plan's result (under `UNDO_KEY`) so
a second click, a retry or a restart shows the same report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from agent.proposal import ActionKind

UNDO_KEY = "undo"  # the report's key inside `Plan.result`

UndoState = Literal["undone", "undo_partial", "undoing"]

KEPT_CHANGED = "changed in Taiga since"
KEPT_HAS_TASKS = "it still has tasks in Taiga"
KEPT_SPRINT_NOT_EMPTY = "the sprint still holds stories or tasks"
KEPT_NOT_CONFIRMED = "Taiga never confirmed it was created; check Taiga and delete it by hand"
KEPT_NO_VERSION = "created before undo existed, so changes since cannot be told"


class UndoItem(BaseModel):
    """One object the plan created or moved, and (when kept or not undone yet) why."""

    kind: ActionKind
    action_key: str
    subject: str
    taiga_id: int | None = None
    ref: int | None = None
    reason: str = ""


class UndoReport(BaseModel):
    """`state` is `undone` (finished), `undo_partial` (some deletes failed: Retry finishes
    them) or `undoing` (another undo of this plan is running; this call changed nothing)."""

    plan_id: str
    state: UndoState
    removed: list[UndoItem] = []
    moved_back: list[UndoItem] = []  # stories the plan moved, back where they were
    kept: list[UndoItem] = []  # left in Taiga on purpose, each with its reason
    gone: list[UndoItem] = []  # already deleted in Taiga by someone else
    failed: list[UndoItem] = []  # not undone yet (Taiga failed or did not answer)


def stored_report(result: dict[str, Any] | None) -> UndoReport | None:
    """The undo report kept in a plan's stored result, if an undo ran."""
    if not result or UNDO_KEY not in result:
        return None
    return UndoReport.model_validate(result[UNDO_KEY])


def with_report(result: dict[str, Any] | None, report: UndoReport) -> dict[str, Any]:
    """The plan's stored result with `report` as its undo."""
    return {**(result or {}), UNDO_KEY: report.model_dump(mode="json")}


def report_lines(report: UndoReport) -> list[str]:
    """The report as plain lines: what was removed, moved back, kept and why, gone, and not
    undone yet."""
    if report.state == "undoing":
        return ["This plan is being undone right now."]
    if report.removed:
        lines = [f"Removed from Taiga ({len(report.removed)}):"]
    else:
        lines = ["Nothing was removed from Taiga."]
    lines += [f"  {label(item)}" for item in report.removed]
    if report.moved_back:
        lines.append(f"Moved back ({len(report.moved_back)}):")
        lines += [f"  {label(item)}: {item.reason}" for item in report.moved_back]
    for title, items in (("Kept", report.kept), ("Not removed yet", report.failed)):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  {label(item)}: {item.reason}" for item in items]
    if report.gone:
        lines.append(f"Already deleted in Taiga ({len(report.gone)}):")
        lines += [f"  {label(item)}" for item in report.gone]
    return lines


def label(item: UndoItem) -> str:
    """Like "story #12 Export as PDF"."""
    ref = f"#{item.ref} " if item.ref is not None else ""
    return f"{_KINDS[item.kind]} {ref}{item.subject}"


_KINDS = {"milestone": "sprint", "move": "story", "story": "story", "task": "task"}
