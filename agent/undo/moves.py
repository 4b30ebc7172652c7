"""Moving the stories a plan moved into its sprint back where they were, each exactly once.

Each story is read first: one whose `version` is not the one recorded right after our move was
changed by someone and is kept where it is (Taiga checks a PATCH's version only against the
fields it sends, so the read is the real check). Otherwise `undo:<action key>` is claimed
pending, `milestone` is PATCHed back with that version and the row completed done. A move whose
answer was lost went through if the story is back, exactly one version later.
"""

from __future__ import annotations

from agent.errors import describe
from agent.undo.deletes import Target, UndoRun, changed, undo_key
from agent.undo.report import KEPT_CHANGED, UndoItem
from taiga.errors import NotFound, ResponseLost, TaigaError, ValidationFailed
from taiga.models import UserStory

_GONE = "already deleted in Taiga"


async def move_back(run: UndoRun, target: Target) -> None:
    """Put the moved story `target` back in `target.back_to` unless someone changed it since."""
    row = run.entries.get(undo_key(target.key))
    if row is not None and row.done:
        run.moved_back.append(_moved(target))
        return
    try:
        story = await run.taiga.get_user_story(target.taiga_id)
    except NotFound:
        run.gone.append(target.item(_GONE))
        return
    except TaigaError as error:
        run.failed.append(target.item("could not read it in Taiga: " + describe(error)))
        return
    if row is not None and _is_back(target, story):  # an earlier run's move went through
        await _done(run, target, story.version)
        return
    if (reason := changed(target, story.version)) is not None:
        run.kept.append(target.item(reason))
        return
    await run.claim(target)
    try:
        moved = await run.taiga.move_user_story(story.id, target.back_to, version=story.version)
    except ValidationFailed as error:
        if "version" not in error.fields:
            run.failed.append(target.item(describe(error)))
            return
        run.kept.append(target.item(KEPT_CHANGED))  # changed between our read and the PATCH
        return
    except ResponseLost as error:
        await _settle_lost(run, target, describe(error))
        return
    except TaigaError as error:
        run.failed.append(target.item(describe(error)))
        return
    await _done(run, target, moved.version)


async def _settle_lost(run: UndoRun, target: Target, why: str) -> None:
    """The PATCH's answer was lost: a read tells whether it went through."""
    try:
        story = await run.taiga.get_user_story(target.taiga_id)
    except TaigaError:
        run.failed.append(target.item(why))
        return
    if _is_back(target, story):
        await _done(run, target, story.version)
    else:
        run.failed.append(target.item(why))


def _is_back(target: Target, story: UserStory) -> bool:
    """Our move back, and nothing after it: back where it was, one version after our move."""
    return (
        target.version is not None
        and story.milestone == target.back_to
        and story.version == target.version + 1
    )


async def _done(run: UndoRun, target: Target, version: int) -> None:
    await run.settle(target, taiga_version=version)
    run.moved_back.append(_moved(target))


def _moved(target: Target) -> UndoItem:
    return target.item("back to " + target.back_to_name)
