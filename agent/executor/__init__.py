"""Apply a stored, approved proposal to Taiga exactly once.

The executor writes exactly the actions recorded in `Plan.proposal`: the sprint first (if one is
to be created), then every existing story it moves in, then every new story, then every task,
with an adaptive bound on writes at once. Every write goes
through the write ledger (pending before it is sent, done after), so a retry, a second approval
or a restart never writes twice; a write whose outcome is unknown is first looked up in Taiga.

    apply.py      apply_plan / record_approved_plan, and the plan's state around a run
    lease.py      the lease a run holds on its plan, renewed by a heartbeat; taking a plan over
    phases.py     sprint, then stories, then tasks: how each is created and found in Taiga
    moves.py      existing stories moved into the sprint, only if unchanged since the proposal
    run.py        ApplyRun: one apply's state, and how one phase of writes is sent
    limiter.py    AdaptiveLimit: how many writes at once, halved on 429/5xx, grown back slowly
    ledger.py     the write ledger: claim pending, complete done, read a done write's outcome
    reconcile.py  recognising in Taiga a write whose outcome is unknown, before resending
    result.py     ExecutionResult / CreatedItem / FailedItem, built from a run, with web links
    writes.py     the proposal's writes (Write, Writes) and what each produced (Outcome)
"""

from agent.executor.apply import (
    DEFAULT_CONCURRENCY,
    INTERRUPTED_BY_SHUTDOWN,
    PlanNotApproved,
    PlanNotFound,
    apply_plan,
    record_approved_plan,
)
from agent.executor.phases import SKIPPED_NO_SPRINT, SKIPPED_NO_STORY
from agent.executor.reconcile import DEFAULT_CLOCK_SKEW
from agent.executor.result import CreatedItem, ExecutionResult, FailedItem
from agent.executor.run import NOT_CONFIRMED

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_CONCURRENCY",
    "INTERRUPTED_BY_SHUTDOWN",
    "NOT_CONFIRMED",
    "SKIPPED_NO_SPRINT",
    "SKIPPED_NO_STORY",
    "CreatedItem",
    "ExecutionResult",
    "FailedItem",
    "PlanNotApproved",
    "PlanNotFound",
    "apply_plan",
    "record_approved_plan",
]
