from __future__ import annotations

import pytest

from agent.budgets import BudgetExceeded, Budgets, BudgetTracker, StopReason, canonical_call
from agent.settings import Settings
from tests.peers.clock import FakeClock


def test_budgets_come_from_settings() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        agent_deadline_seconds=30,
        agent_max_steps=4,
        agent_max_tool_calls=9,
        agent_max_write_calls=7,
        agent_max_repeated_calls=3,
    )
    assert Budgets.from_settings(settings) == Budgets(30, 4, 9, 7, 3)


def test_steps_budget_stops_after_max_steps() -> None:
    tracker = BudgetTracker(Budgets(max_steps=2), FakeClock())
    tracker.begin_step()
    tracker.begin_step()
    with pytest.raises(BudgetExceeded) as stop:
        tracker.begin_step()
    assert stop.value.reason is StopReason.STEPS


def test_write_budget_counts_write_calls_not_tasks() -> None:
    tracker = BudgetTracker(Budgets(max_write_calls=2), FakeClock())
    tracker.admit_call("w", {"subject": "a", "tasks": [{"subject": "t"}] * 5}, write=True)
    tracker.admit_call("r", {}, write=False)
    tracker.admit_call("w", {"subject": "b"}, write=True)
    with pytest.raises(BudgetExceeded) as stop:
        tracker.admit_call("w", {"subject": "c"}, write=True)
    assert stop.value.reason is StopReason.WRITE_CALLS


def test_tool_call_budget() -> None:
    tracker = BudgetTracker(Budgets(max_tool_calls=2), FakeClock())
    tracker.admit_call("r", {"a": 1}, write=False)
    tracker.admit_call("r", {"a": 2}, write=False)
    with pytest.raises(BudgetExceeded) as stop:
        tracker.admit_call("r", {"a": 3}, write=False)
    assert stop.value.reason is StopReason.TOOL_CALLS


def test_repeated_identical_calls_stop_regardless_of_key_order() -> None:
    tracker = BudgetTracker(Budgets(max_repeated_calls=2), FakeClock())
    tracker.admit_call("r", {"a": 1, "b": 2}, write=False)
    tracker.admit_call("r", {"b": 2, "a": 1}, write=False)
    tracker.admit_call("r", {"a": 1, "b": 3}, write=False)
    with pytest.raises(BudgetExceeded) as stop:
        tracker.admit_call("r", {"b": 2, "a": 1}, write=False)
    assert stop.value.reason is StopReason.REPEATED_CALLS
    assert canonical_call("r", {"b": 2, "a": 1}) == 'r:{"a":1,"b":2}'


def test_deadline_follows_the_injected_clock() -> None:
    clock = FakeClock()
    tracker = BudgetTracker(Budgets(deadline_seconds=10), clock)
    tracker.begin_step()
    clock.advance(10)
    with pytest.raises(BudgetExceeded) as stop:
        tracker.begin_step()
    assert stop.value.reason is StopReason.DEADLINE


def test_every_stop_reason_has_a_sentence() -> None:
    budgets = Budgets()
    for reason in StopReason:
        assert budgets.describe(reason).startswith("Planning stopped early: ")
    assert "25 proposed writes" in budgets.describe(StopReason.WRITE_CALLS)
