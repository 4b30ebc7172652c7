"""The plan's state machine: its states, and the one table of moves between them.

A plan's `state` changes only through `storage.repositories.transition_plan`, which takes a
`Transition` and moves the plan by the table's line for it. A new move is one new line in
`MOVES` (and its name in `Transition`); a move that is not in the table raises
`IllegalTransition`.

`executing` and `undoing` are leased: the run in them holds a lease (`Plan.lease_owner`,
`lease_until`) that its heartbeat renews. A move out of a leased state says who may make it
(`Guard`): only the run holding the lease (its own result), or anyone once the lease has lapsed
(a takeover or parking a plan whose run died); nobody else, however slow the holder is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

PLAN_STATES: Final = frozenset(
    {
        "drafting",
        "proposed",
        "approved",
        "executing",
        "done",
        "partial",
        "failed",
        "rejected",
        "expired",
        "undoing",
        "undone",
        "undo_partial",
    }
)
LEASED_STATES: Final = frozenset({"executing", "undoing"})


class Cause(Enum):
    """Who may make a move."""

    PLANNER = "the planner"
    PERSON = "a person deciding"
    EXECUTOR = "the executor"
    SWEEP = "the recovery sweep or expiry"


class Transition(Enum):
    """A move a caller makes; `MOVES` says from which states, to which, and by whom."""

    PROPOSE = "propose"
    REVISE = "revise"
    PICK = "pick"
    FAIL_DRAFT = "fail_draft"
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"
    START_APPLY = "start_apply"
    TAKE_OVER_APPLY = "take_over_apply"
    FINISH_APPLY = "finish_apply"
    FINISH_APPLY_PARTIAL = "finish_apply_partial"
    PARK = "park"
    START_UNDO = "start_undo"
    TAKE_OVER_UNDO = "take_over_undo"
    FINISH_UNDO = "finish_undo"
    FINISH_UNDO_PARTIAL = "finish_undo_partial"
    PARK_UNDO = "park_undo"


class Guard(Enum):
    """Who may move a plan that is in a leased state."""

    NONE = "nobody holds the source states"
    HOLDER = "only the run holding the lease"
    LAPSED = "anyone, once the lease has lapsed"


@dataclass(frozen=True, slots=True)
class Move:
    sources: frozenset[str]
    target: str
    cause: Cause
    guard: Guard = Guard.NONE

    def __post_init__(self) -> None:
        unknown = (self.sources | {self.target}) - PLAN_STATES
        if unknown:
            raise ValueError(f"unknown plan state(s) {sorted(unknown)}")
        if (self.guard is Guard.NONE) != self.sources.isdisjoint(LEASED_STATES):
            raise ValueError("a move out of a leased state needs a guard, and only such a move")


def _move(sources: str, target: str, cause: Cause, guard: Guard = Guard.NONE) -> Move:
    """A table line; `sources` is a `|`-separated list of states."""
    return Move(frozenset(sources.split("|")), target, cause, guard)


MOVES: Final[Mapping[Transition, Move]] = MappingProxyType(
    {
        Transition.PROPOSE: _move("drafting", "proposed", Cause.PLANNER),
        Transition.FAIL_DRAFT: _move("drafting", "failed", Cause.PLANNER),
        # A new version of the proposal (edited or refined); the old one can no longer be decided.
        Transition.REVISE: _move("proposed", "proposed", Cause.PERSON),
        # Items left out of (or put back into) the current version.
        Transition.PICK: _move("proposed", "proposed", Cause.PERSON),
        Transition.APPROVE: _move("proposed", "approved", Cause.PERSON),
        Transition.REJECT: _move("proposed", "rejected", Cause.PERSON),
        Transition.EXPIRE: _move("proposed", "expired", Cause.SWEEP),
        Transition.START_APPLY: _move("approved|partial", "executing", Cause.EXECUTOR),
        # A run that died (its lease lapsed) is taken over by a new one with a new lease.
        Transition.TAKE_OVER_APPLY: _move("executing", "executing", Cause.EXECUTOR, Guard.LAPSED),
        Transition.FINISH_APPLY: _move("executing", "done", Cause.EXECUTOR, Guard.HOLDER),
        # Some writes failed, or the run was interrupted: applying again finishes the rest.
        Transition.FINISH_APPLY_PARTIAL: _move(
            "executing", "partial", Cause.EXECUTOR, Guard.HOLDER
        ),
        # A run that cannot be resumed is left for a person to retry.
        Transition.PARK: _move("approved|executing|partial", "partial", Cause.SWEEP, Guard.LAPSED),
        # Undo: the approver (Undo, or Retry of an undo that stopped) starts deleting what the
        # plan created; applying it again is no longer possible from here on.
        Transition.START_UNDO: _move("done|partial|undo_partial", "undoing", Cause.PERSON),
        # An undo that died (its lease lapsed) is taken over by a new one with a new lease.
        Transition.TAKE_OVER_UNDO: _move("undoing", "undoing", Cause.SWEEP, Guard.LAPSED),
        Transition.FINISH_UNDO: _move("undoing", "undone", Cause.EXECUTOR, Guard.HOLDER),
        # Some deletes failed or the run was interrupted: Retry finishes the undo.
        Transition.FINISH_UNDO_PARTIAL: _move(
            "undoing", "undo_partial", Cause.EXECUTOR, Guard.HOLDER
        ),
        # An undo that cannot be resumed (the approver's link is gone) waits for their Retry.
        Transition.PARK_UNDO: _move("undoing", "undo_partial", Cause.SWEEP, Guard.LAPSED),
    }
)


class IllegalTransition(ValueError):
    """A move that is not in the plan's table of transitions."""


def move_for(transition: Transition) -> Move:
    """The table's line for `transition`; raises `IllegalTransition` when there is none."""
    try:
        return MOVES[transition]
    except KeyError:
        raise IllegalTransition(f"{transition!r} is not a move of the plan") from None
