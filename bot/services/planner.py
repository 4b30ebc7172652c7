"""Starting a plan: from `/taiga plan` or a mention (`bot.services.mentions`), into a thread,
up to the proposal.

The request is checked (linked account, channel project, minutes within the limit), the
thread shows each step live (`bot.services.live_progress`: streamed, or a status message
updated in place), and the proposal ends that message with Approve / Reject buttons.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from agent.budgets import Budgets
from agent.loop import propose
from agent.people import SlackPerson
from agent.progress import Step
from agent.proposal import Proposal
from bot import blocks
from bot.services.accounts import tell_link_expired
from bot.services.core import Services
from bot.services.drafting import start_draft
from bot.services.errors import (
    NO_PROJECT,
    NOT_LINKED,
    explain,
    is_link_expired,
    log_failure,
    minutes_too_long,
    not_in_channel_sentence,
    slack_error_code,
)
from bot.services.live_progress import LiveProgress, live_progress
from bot.services.minutes import read_minutes
from bot.services.parsing import SPRINT_NAME_MAX
from bot.services.slack_io import (
    Tell,
    esc,
    permalink,
    post,
)
from bot.services.streaming import Recipient
from bot.services.versions import proposal_message
from storage import repositories as repo
from storage.bounded import ValueTooLong
from storage.models import ChannelProject
from storage.plan_states import Transition

logger = logging.getLogger(__name__)

ASK_BLOCK_PREFIX = "taiga_plan_ask:"
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlanRun:
    """Everything one planning run needs, checked."""

    team_id: str
    channel_id: str
    thread_ts: str
    user_id: str
    sprint: str
    minutes: str  # decoded plain text
    project: ChannelProject
    link: repo.TaigaLinkView
    people: tuple[SlackPerson, ...] = ()  # the Slack users who wrote or are named in the minutes


async def channel_project(
    services: Services, team_id: str, channel_id: str
) -> ChannelProject | None:
    return await services.db.run(
        lambda s: repo.get_channel_project(s, team_id=team_id, channel_id=channel_id)
    )


def too_long(services: Services, minutes: str) -> str | None:
    limit = services.settings.max_minutes_chars
    return minutes_too_long(len(minutes), limit).text if len(minutes) > limit else None


def sprint_too_long(sprint: str) -> str | None:
    """Why Taiga would refuse this sprint name (checked once mentions became names)."""
    if len(sprint) <= SPRINT_NAME_MAX:
        return None
    return ValueTooLong("sprint name", len(sprint), SPRINT_NAME_MAX).sentence


# --------------------------------------------------------------------------- /taiga plan


async def plan_from_command(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    sprint: str,
    raw_minutes: str,
    link: repo.TaigaLinkView | None,
    tell: Tell,
) -> None:
    """`/taiga plan <sprint>` + minutes: a message in the channel, the plan in its thread."""
    if not sprint:
        await tell(
            "Name the sprint: `/taiga plan <sprint name>` with the minutes on the next lines."
        )
        return
    if link is None:
        await tell(NOT_LINKED)
        return
    project = await channel_project(services, team_id, channel_id)
    if project is None:
        await tell(NO_PROJECT)
        return
    sprint = await services.directory.readable(sprint)
    read = await read_minutes(
        services, team_id=team_id, messages=[{"text": raw_minutes}],
        limit=services.settings.max_minutes_chars,
    )
    problem = too_long(services, read.text) or sprint_too_long(sprint)
    if problem:
        await tell(problem)
        return
    if not read.text.strip():
        await _ask_in_channel(services, channel_id, user_id, sprint, project, tell=tell)
        return
    draft = await start_draft(
        services, team_id=team_id, channel_id=channel_id, user_id=user_id, thread_ts=None,
        tell=tell,
    )
    if draft is None:
        return
    try:
        root = await _post_or_explain(
            services, channel_id, tell=tell,
            text=(
                f"<@{user_id}> asked for a plan of *{esc(sprint)}* in "
                f"*{esc(project.project_name)}*. I'm working on it in this thread."
            ),
        )
        if root is None:
            return
        await draft.in_thread(root)
        run = PlanRun(
            team_id, channel_id, root, user_id, sprint, read.text, project, link, read.people
        )
        await run_plan(services, run, tell=tell)
    finally:
        await draft.release()


async def _ask_in_channel(
    services: Services, channel_id: str, user_id: str, sprint: str, project: ChannelProject,
    *, tell: Tell,
) -> None:
    try:
        await ask_for_minutes(
            services, channel_id=channel_id, user_id=user_id, sprint=sprint, project=project,
            thread_ts=None,
        )
    except SlackApiError as error:
        if not _is_not_in_channel(error):
            raise
        await tell(not_in_channel_sentence(channel_id))


async def _post_or_explain(
    services: Services, channel_id: str, *, text: str, tell: Tell
) -> str | None:
    """Post `text` in the channel; None (and the requester told) when the bot is not in it."""
    try:
        return await post(services.slack, channel=channel_id, text=text)
    except SlackApiError as error:
        if not _is_not_in_channel(error):
            raise
        await tell(not_in_channel_sentence(channel_id))
        return None


def _is_not_in_channel(error: SlackApiError) -> bool:
    return slack_error_code(error) in {"not_in_channel", "channel_not_found"}


async def ask_for_minutes(
    services: Services,
    *,
    channel_id: str,
    user_id: str,
    sprint: str,
    project: ChannelProject,
    thread_ts: str | None,
) -> str:
    """Ask for the minutes; the request (sprint name) is kept in the message's block id so a
    reply mentioning the bot in that thread can continue it."""
    text = (
        f"<@{user_id}> wants a plan of *{esc(sprint)}* in *{esc(project.project_name)}*. "
        "Reply in this thread, mentioning me, with the meeting minutes."
    )
    blocks = [
        {
            "type": "section",
            "block_id": (ASK_BLOCK_PREFIX + sprint)[:255],
            "text": {"type": "mrkdwn", "text": text},
        }
    ]
    return await post(
        services.slack, channel=channel_id, text=text, thread_ts=thread_ts, blocks=blocks
    )


def asked_sprint(message: Json) -> str | None:
    """The sprint name of one of our "reply with the minutes" messages, else None."""
    for block in message.get("blocks") or []:
        block_id = str(block.get("block_id") or "")
        if block_id.startswith(ASK_BLOCK_PREFIX):
            return block_id[len(ASK_BLOCK_PREFIX) :]
    return None


# --------------------------------------------------------------------------- the run


async def run_plan(services: Services, run: PlanRun, *, tell: Tell) -> None:
    """Draft the plan in the thread: its steps shown live, then the proposal in their place."""
    live = live_progress(
        services, channel=run.channel_id, thread_ts=run.thread_ts,
        title=f"Drafting a plan of {run.sprint} in {run.project.project_name}",
        recipient=Recipient(team_id=run.team_id, user_id=run.user_id),
    )
    status_ts = await live.show_now(Step("read", "Reading the project in Taiga"))
    plan_id = await _create_plan(services, run, status_ts)
    logger.info("plan %s: drafting for %s", plan_id, run.user_id)
    try:
        proposal = await propose(
            anthropic=services.anthropic,
            model=services.settings.anthropic_model,
            taiga=services.refresher.session(run.link),
            project_ref=run.project.project_id,
            sprint_name=run.sprint,
            minutes=run.minutes,
            budgets=Budgets.from_settings(services.settings),
            clock=services.clock,
            progress=live.step,
            slack_people=run.people,
        )
    except Exception as error:
        await _drafting_failed(services, run, plan_id, live, error, tell=tell)
        return
    await live.step(Step("proposal", "Writing up the proposal"))
    await _show_proposal(services, run, plan_id, live, proposal)


async def _create_plan(services: Services, run: PlanRun, status_ts: str) -> str:
    """Store the plan being drafted, with the link to its thread that each story will end with."""
    digest = hashlib.sha256(run.minutes.encode("utf-8")).hexdigest()
    thread_link = await permalink(services.slack, channel=run.channel_id, ts=run.thread_ts)
    now = services.now()
    return await services.db.run(
        lambda s: repo.create_plan(
            s,
            slack_team_id=run.team_id,
            slack_channel_id=run.channel_id,
            slack_thread_ts=run.thread_ts,
            slack_message_ts=status_ts,
            slack_permalink=thread_link,
            requester_slack_id=run.user_id,
            project_id=run.project.project_id,
            project_slug=run.project.project_slug,
            target_sprint=run.sprint,
            minutes_digest=digest,
            created_at=now,
            updated_at=now,
        ).id
    )


async def _drafting_failed(
    services: Services,
    run: PlanRun,
    plan_id: str,
    live: LiveProgress,
    error: Exception,
    *,
    tell: Tell,
) -> None:
    """The progress says why, and so does a private message to the requester (who may not be
    watching the thread); an expired link gets its DM instead."""
    log_failure("drafting the plan failed", error, plan_id=plan_id)
    sentence = explain(error, project=run.project.project_name, permission="view_project")
    await services.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan_id, transition=Transition.FAIL_DRAFT, error=sentence
        )
    )
    await live.fail(sentence, blocks.error_blocks(sentence))
    if is_link_expired(error):
        await tell_link_expired(services, user_id=run.user_id, text=sentence)
    else:
        await tell(esc(sentence))


async def _show_proposal(
    services: Services, run: PlanRun, plan_id: str, live: LiveProgress, proposal: Proposal
) -> None:
    expires_at = services.now() + timedelta(hours=services.settings.plan_expiry_hours)
    stored = proposal.model_dump(mode="json")
    moved = await services.db.run(
        lambda s: repo.store_first_version(
            s, plan_id=plan_id, proposal=stored, author_slack_id=run.user_id,
            minutes=run.minutes, expires_at=expires_at,
        )
    )
    if not moved:
        logger.warning("plan %s: left drafting while the proposal was drafted", plan_id)
        await live.fail("The plan was closed while it was being drafted.")
        return
    message = proposal_message(services, plan_id, proposal, run.user_id, 1)
    await live.finish(message)
    usage = proposal.usage
    logger.info(
        "plan %s: proposed (%d actions; %d model calls, %d input / %d output tokens, %d cached)",
        plan_id, len(proposal.actions()), usage.model_calls, usage.input_tokens,
        usage.output_tokens, usage.cache_read_tokens,
    )
