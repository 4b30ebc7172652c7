"""Progress a caller may follow while a plan is drafted or applied: named steps that go
in progress → complete (or error, with the reason), as Slack's AI apps show them.

The producers (the planning loop, the executor) only say which step is running now
(`Step("stories", "Creating stories 3/8")`); `Steps` keeps the board: a step that
starts completes the one before it, and the end completes or fails the last one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

log = logging.getLogger(__name__)

StepStatus = Literal["in_progress", "complete", "error"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step: `key` names it ("read", "draft", "stories"), `title` says where it is now."""

    key: str
    title: str
    status: StepStatus = "in_progress"
    details: str = ""


Progress = Callable[[Step], Awaitable[None]]


async def report(progress: Progress | None, step: Step) -> None:
    """Send `step` to `progress`; a failing report is logged, never raised: progress is
    cosmetic and must not break planning or a write."""
    if progress is None:
        return
    try:
        await progress(step)
    except Exception:
        log.warning("progress callback failed", exc_info=True)


class Steps:
    """The steps so far, in the order they started, each with its latest title and status."""

    def __init__(self, steps: tuple[Step, ...] = ()) -> None:
        self._steps: dict[str, Step] = {}
        for step in steps:
            self.update(step)

    def update(self, step: Step) -> None:
        """Record `step`; a new step completes the one running before it."""
        if step.key not in self._steps:
            self._complete_running()
        self._steps[step.key] = step

    def finish(self) -> None:
        """Every step still running is complete."""
        self._complete_running()

    def fail(self, reason: str) -> None:
        """The running step (else the last one) failed for `reason`; none is left running."""
        running = [s for s in self._steps.values() if s.status == "in_progress"]
        candidates = running or list(self._steps.values())
        self._complete_running()
        if candidates:
            failed = candidates[-1]
            self._steps[failed.key] = replace(failed, status="error", details=reason)

    def snapshot(self) -> tuple[Step, ...]:
        return tuple(self._steps.values())

    def _complete_running(self) -> None:
        for key, step in self._steps.items():
            if step.status == "in_progress":
                self._steps[key] = replace(step, status="complete")
