"""Explicit, typed budgets for one planning run, and the tracker that enforces them.

Budgets count the model's calls (model turns and tool calls), not Taiga writes: one
`taiga_create_user_story` call carrying five tasks is one write call.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.settings import Settings
    from taiga.client import Clock


class StopReason(StrEnum):
    """Why a planning run stopped before the model said it was done."""

    DEADLINE = "deadline"
    STEPS = "steps"
    TOOL_CALLS = "tool_calls"
    WRITE_CALLS = "write_calls"
    REPEATED_CALLS = "repeated_calls"
    MAX_TOKENS = "max_tokens"
    REFUSAL = "refusal"


# One sentence per reason, for warnings shown to people.
STOP_MESSAGES: dict[StopReason, str] = {
    StopReason.DEADLINE: "the time limit of {deadline:g} s was reached",
    StopReason.STEPS: "the limit of {steps} model calls was reached",
    StopReason.TOOL_CALLS: "the limit of {tool_calls} tool calls was reached",
    StopReason.WRITE_CALLS: "the limit of {write_calls} proposed writes was reached",
    StopReason.REPEATED_CALLS: "the model repeated the same call more than {repeated} times",
    StopReason.MAX_TOKENS: "the model's answer was cut off at its length limit",
    StopReason.REFUSAL: "the model declined to plan from these minutes",
}


@dataclass(frozen=True, slots=True)
class Budgets:
    deadline_seconds: float = 90.0
    max_steps: int = 10
    max_tool_calls: int = 25
    max_write_calls: int = 25
    max_repeated_calls: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> Budgets:
        return cls(
            deadline_seconds=settings.agent_deadline_seconds,
            max_steps=settings.agent_max_steps,
            max_tool_calls=settings.agent_max_tool_calls,
            max_write_calls=settings.agent_max_write_calls,
            max_repeated_calls=settings.agent_max_repeated_calls,
        )

    def cause(self, reason: StopReason) -> str:
        """Why the run stopped, as a clause: "the limit of 10 model calls was reached"."""
        return STOP_MESSAGES[reason].format(
            deadline=self.deadline_seconds,
            steps=self.max_steps,
            tool_calls=self.max_tool_calls,
            write_calls=self.max_write_calls,
            repeated=self.max_repeated_calls,
        )

    def describe(self, reason: StopReason) -> str:
        """A plain sentence: why the run stopped and that the plan may be incomplete."""
        return f"Planning stopped early: {self.cause(reason)}. The plan below may be incomplete."


class BudgetExceeded(Exception):
    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def canonical_call(name: str, arguments: Any) -> str:
    """Tool name + arguments as canonical JSON: the key for spotting repeated calls."""
    return name + ":" + json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


class BudgetTracker:
    """Counts one run's model steps and tool calls against `Budgets`; the deadline starts now."""

    def __init__(self, budgets: Budgets, clock: Clock) -> None:
        self.budgets = budgets
        self.clock = clock
        self.deadline = clock.now() + budgets.deadline_seconds
        self.steps = 0
        self.tool_calls = 0
        self.write_calls = 0
        self._seen: Counter[str] = Counter()

    def remaining(self) -> float:
        return self.deadline - self.clock.now()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise BudgetExceeded(StopReason.DEADLINE)

    def begin_step(self) -> None:
        """Admit one more model call, or raise `BudgetExceeded`."""
        self.check_deadline()
        if self.steps >= self.budgets.max_steps:
            raise BudgetExceeded(StopReason.STEPS)
        self.steps += 1

    def admit_call(self, name: str, arguments: Any, *, write: bool, late: bool = False) -> None:
        """Admit one tool call (counted even if its input turns out invalid), or raise. `late`:
        a call the model finished before the deadline, kept although the deadline has passed."""
        if not late:
            self.check_deadline()
        key = canonical_call(name, arguments)
        if self._seen[key] >= self.budgets.max_repeated_calls:
            raise BudgetExceeded(StopReason.REPEATED_CALLS)
        if self.tool_calls >= self.budgets.max_tool_calls:
            raise BudgetExceeded(StopReason.TOOL_CALLS)
        if write and self.write_calls >= self.budgets.max_write_calls:
            raise BudgetExceeded(StopReason.WRITE_CALLS)
        self._seen[key] += 1
        self.tool_calls += 1
        if write:
            self.write_calls += 1
