"""Who may start drafting a plan now: one draft per person per channel, and at most
`MAX_DRAFTING_PLANS_PER_WORKSPACE` per workspace, held in the database
(`storage.repositories.drafting`) so every replica sees the same drafts.

A claim lives as long as its draft; one left by a process that died stops counting after the
planning deadline plus `STALE_MARGIN`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from bot.services.core import Services
from bot.services.errors import log_failure
from bot.services.slack_io import Tell, permalink
from storage import repositories as repo

logger = logging.getLogger(__name__)

# Past the planning deadline, a live draft is finishing its last Slack and database calls.
STALE_MARGIN: Final = timedelta(minutes=2)
WORKSPACE_FULL = "{count} plans are being drafted in this workspace; try again in a minute."
ALREADY_PLANNING = (
    "I'm already planning a sprint for you in this channel — see {thread}. Start the next "
    "one once its proposal is shown."
)


@dataclass(frozen=True, slots=True)
class Draft:
    """A claimed draft; `release()` when drafting ends, however it ends."""

    services: Services
    team_id: str
    token: str

    async def in_thread(self, thread_ts: str) -> None:
        await self.services.db.run(
            lambda s: repo.drafting_in_thread(
                s, team_id=self.team_id, token=self.token, thread_ts=thread_ts
            )
        )

    async def release(self) -> None:
        try:
            await self.services.db.run(
                lambda s: repo.release_drafting(s, team_id=self.team_id, token=self.token)
            )
        except Exception as error:  # it lapses by itself after the deadline
            log_failure("could not release a drafting claim", error)


async def start_draft(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    thread_ts: str | None,
    tell: Tell,
) -> Draft | None:
    """Claim a draft for `user_id` in `channel_id`; None, after telling them why, when they
    are drafting one there already or the workspace is at its cap."""
    settings = services.settings
    now = services.now()
    stale_before = now - timedelta(seconds=settings.agent_deadline_seconds) - STALE_MARGIN
    outcome = await services.db.run(
        lambda s: repo.claim_drafting(
            s, team_id=team_id, channel_id=channel_id, user_id=user_id, thread_ts=thread_ts,
            cap=settings.max_drafting_plans_per_workspace, now=now, stale_before=stale_before,
        )
    )
    if isinstance(outcome, repo.Claimed):
        return Draft(services, team_id, outcome.token)
    if isinstance(outcome, repo.WorkspaceFull):
        logger.info("workspace %s drafts %d plans; one more refused", team_id, outcome.drafting)
        await tell(WORKSPACE_FULL.format(count=outcome.drafting))
    else:
        await tell(ALREADY_PLANNING.format(thread=await _thread(services, channel_id, outcome)))
    return None


async def _thread(services: Services, channel_id: str, held: repo.AlreadyDrafting) -> str:
    link = None
    if held.thread_ts:
        link = await permalink(services.slack, channel=channel_id, ts=held.thread_ts)
    return f"<{link}|the thread>" if link else "the thread I started for it"
