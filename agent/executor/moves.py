"""The move phase of an apply: existing stories the plan takes into its sprint.

A move is `PATCH /userstories/<id>` with `milestone` and the story's `version`. Taiga checks that
version only against the fields a PATCH sends (a story whose description was edited since would
still be moved), so the story is read first and moved only if its version is still the one the
proposal recorded; otherwise it is reported as changed and left alone. The ledger keeps the
sprint it came from and its version after the move, so it can be moved back.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.errors import ChangedSinceProposal
from agent.executor.run import ApplyRun
from agent.executor.writes import Outcome, Write
from agent.wording import plural
from taiga.errors import ValidationFailed

CHANGED_NOT_MOVED = "changed in Taiga since the proposal — not moved"
SKIPPED_NOT_MOVED = "skipped: its story was not moved into the sprint"
_NO_SPRINT = "skipped: the plan has no sprint to move it into"


async def move_phase(run: ApplyRun, moves: Sequence[Write]) -> None:
    if not moves:
        return
    target = run.milestone_id
    if target is None:
        for write in moves:
            run.fail(write, _NO_SPRINT, skipped=True)
        return

    async def move(write: Write) -> Outcome:
        assert write.user_story_id is not None and write.version is not None
        story = await run.taiga.get_user_story(write.user_story_id)
        if story.version != write.version:
            raise ChangedSinceProposal(CHANGED_NOT_MOVED)
        try:
            moved = await run.taiga.move_user_story(story.id, target, version=story.version)
        except ValidationFailed as error:
            if "version" not in error.fields:
                raise
            raise ChangedSinceProposal(CHANGED_NOT_MOVED) from None
        return Outcome(
            id=moved.id,
            ref=moved.ref,
            version=moved.version,
            previous_milestone_id=story.milestone,
        )

    async def find(writes: Sequence[Write]) -> dict[str, Outcome]:
        """A move whose answer was lost went through if the story is in the sprint exactly one
        version after the proposal's (a later edit by someone else is not ours to claim)."""
        found: dict[str, Outcome] = {}
        for write in writes:
            assert write.user_story_id is not None and write.version is not None
            story = await run.taiga.get_user_story(write.user_story_id)
            if story.milestone == target and story.version == write.version + 1:
                found[write.key] = Outcome(
                    id=story.id,
                    ref=story.ref,
                    version=story.version,
                    previous_milestone_id=write.from_milestone_id,
                    reconciled=True,
                )
        return found

    total = len(moves)
    await run.report("moves", f"Moving {total} {plural(total, 'story', 'stories')} into the sprint")
    await run.run_phase(moves, move, find)
