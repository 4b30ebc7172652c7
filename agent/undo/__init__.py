"""Undo an applied plan: delete exactly what it created and move back the stories it moved,
once, and keep what people changed.

    plan.py     undo_plan: the window, the permissions, and the plan's state around one undo
    deletes.py  UndoRun: read, compare `version`, claim `undo:<key>`, DELETE, complete
    moves.py    move_back: read, compare `version`, claim, PATCH `milestone` back, complete
    report.py   UndoReport: removed, moved back, kept (and why), already gone, not undone yet
"""

from agent.undo.plan import DELETE_PERMISSIONS, UndoRefused, undo_plan
from agent.undo.report import UndoItem, UndoReport, stored_report

__all__ = [
    "DELETE_PERMISSIONS",
    "UndoItem",
    "UndoRefused",
    "UndoReport",
    "stored_report",
    "undo_plan",
]
