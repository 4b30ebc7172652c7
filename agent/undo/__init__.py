"""Undo an applied plan: delete exactly what it created, once, and keep what people changed.

    plan.py     undo_plan: the window, the permissions, and the plan's state around one undo
    deletes.py  UndoRun: read, compare `version`, claim `undo:<key>`, DELETE, complete
    report.py   UndoReport: removed, kept (and why), already gone, not removed yet
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
