"""What a mention of the bot means, and the answer to it.

- `@bot plan <sprint>` (minutes in the message, or the thread above it) starts a plan;
- in a thread whose latest plan is proposed, a mention that asks for a change refines that plan
  (`bot.services.refining`), any other mention gets a short private answer;
- in a thread whose plan is finished (or still drafting), a mention without `plan` gets a short
  private answer: a new plan there needs the explicit `plan` command;
- in a thread where the bot asked for the minutes (and no plan was made yet), a reply with the
  minutes continues that request;
- anything else gets a private usage hint.

Slack's re-deliveries of an event start nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from bot.services import planner
from bot.services.core import Services
from bot.services.decisions import expire_proposal, is_past_expiry
from bot.services.drafting import start_draft
from bot.services.errors import NO_PROJECT, NOT_LINKED
from bot.services.minutes import has_content, is_minutes_message, read_minutes
from bot.services.parsing import (
    MentionRequest,
    asks_for_change,
    is_plan_command,
    parse_mention,
)
from bot.services.refining import refine_plan
from bot.services.slack_io import Tell, thread_messages
from storage import repositories as repo
from storage.models import Plan

logger = logging.getLogger(__name__)

Json = dict[str, Any]
PLAN_USAGE = (
    "To plan a sprint, mention me with `plan <sprint name>` and the minutes on the next lines, "
    "or mention me with `plan <sprint name>` in a thread that holds the minutes."
)
HOW_TO_CHANGE = (
    "To change the plan in this thread (version {version}), mention me here with what to change, "
    "for example `@Taiga Planner drop the analytics story` or `@Taiga Planner merge the two "
    "login stories`. To decide, use the buttons on its newest version. To start another plan, "
    "mention me with `plan <sprint name>`."
)
STILL_DRAFTING = (
    "I'm still drafting the plan in this thread. Once it is shown, mention me here with what to "
    "change."
)
FINISHED = (
    "The plan in this thread {what}. To start a new plan here, mention me with "
    "`plan <sprint name>`."
)
FINISHED_WHAT = {
    "approved": "is being applied",
    "executing": "is being applied",
    "done": "was applied",
    "partial": "was partly applied; use Retry on its message to finish it",
    "rejected": "was rejected",
    "expired": "expired",
    "failed": "could not be drafted",
}


@dataclass(frozen=True, slots=True)
class Mention:
    team_id: str
    channel_id: str
    user_id: str
    ts: str
    thread_ts: str | None
    text: str
    event_id: str | None

    @property
    def in_thread(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts

    @property
    def reply_thread(self) -> str:
        return self.thread_ts or self.ts


# Slack re-sends an event within minutes; a day of ids is plenty, and keeps the table small.
EVENT_MEMORY = timedelta(days=1)


async def first_delivery(services: Services, event_id: str | None) -> bool:
    if not event_id:
        return True
    now = services.now()

    def remember(session: Session) -> bool:
        repo.prune_slack_events(session, before=now - EVENT_MEMORY)
        return repo.first_delivery(session, event_id=event_id, now=now)

    return await services.db.run(remember)


async def answer_mention(
    services: Services,
    mention: Mention,
    *,
    bot_user_id: str | None,
    link: repo.TaigaLinkView | None,
    tell: Tell,
) -> None:
    """Answer a mention by what it means (see the module docstring). `tell` answers the person
    who mentioned the bot, privately."""
    if not await first_delivery(services, mention.event_id):
        logger.info("event %s delivered again; ignored", mention.event_id)
        return
    request = parse_mention(mention.text, bot_user_id)
    if not request.is_plan and mention.in_thread:
        plan = await _latest_plan(services, mention)
        if plan is not None:
            await _about_plan(services, plan, mention, request, link=link, tell=tell)
            return
    await plan_from_mention(services, mention, request, bot_user_id=bot_user_id, link=link,
                            tell=tell)


async def _latest_plan(services: Services, mention: Mention) -> Plan | None:
    return await services.db.run(
        lambda s: repo.latest_plan_in_thread(
            s, team_id=mention.team_id, channel_id=mention.channel_id,
            thread_ts=mention.reply_thread,
        )
    )


async def _about_plan(
    services: Services,
    plan: Plan,
    mention: Mention,
    request: MentionRequest,
    *,
    link: repo.TaigaLinkView | None,
    tell: Tell,
) -> None:
    """A mention (not a `plan` command) in the thread of `plan`."""
    if is_past_expiry(services, plan):
        await expire_proposal(services, plan)
        plan = await services.db.run(lambda s: repo.get_plan(s, plan.id)) or plan
    if plan.state == "drafting":
        await tell(STILL_DRAFTING)
    elif plan.state != "proposed":
        await tell(FINISHED.format(what=FINISHED_WHAT.get(plan.state, "is finished")))
    elif not asks_for_change(request.text):
        await tell(HOW_TO_CHANGE.format(version=plan.proposal_version))
    else:
        instruction = await services.directory.readable(request.text)
        await refine_plan(
            services, plan, user_id=mention.user_id, instruction=instruction, link=link,
            tell=tell,
        )


async def plan_from_mention(
    services: Services,
    mention: Mention,
    request: MentionRequest,
    *,
    bot_user_id: str | None,
    link: repo.TaigaLinkView | None,
    tell: Tell,
) -> None:
    """`@bot plan <sprint>` (minutes in the message, or the thread above it), or a reply with
    the minutes in a thread where the bot asked for them; anything else gets the usage hint."""
    thread: list[Json] = []
    if mention.in_thread and (not request.is_plan or not request.minutes):
        thread = await thread_messages(
            services.slack, channel=mention.channel_id, thread_ts=mention.reply_thread
        )
    sprint, messages = _sprint_and_minutes(request, mention, thread, bot_user_id)
    if sprint is None:
        await tell(PLAN_USAGE)
        return
    if link is None:
        await tell(NOT_LINKED)
        return
    project = await planner.channel_project(services, mention.team_id, mention.channel_id)
    if project is None:
        await tell(NO_PROJECT)
        return
    sprint = await services.directory.readable(sprint)
    minutes = await read_minutes(
        services, team_id=mention.team_id, messages=messages,
        limit=services.settings.max_minutes_chars,
    )
    problem = planner.too_long(services, minutes.text) or planner.sprint_too_long(sprint)
    if problem:
        await tell(problem)
        return
    if not minutes.text.strip():
        await planner.ask_for_minutes(
            services, channel_id=mention.channel_id, user_id=mention.user_id, sprint=sprint,
            project=project, thread_ts=mention.reply_thread,
        )
        return
    draft = await start_draft(
        services, team_id=mention.team_id, channel_id=mention.channel_id,
        user_id=mention.user_id, thread_ts=mention.reply_thread, tell=tell,
    )
    if draft is None:
        return
    run = planner.PlanRun(
        mention.team_id, mention.channel_id, mention.reply_thread, mention.user_id,
        sprint, minutes.text, project, link, minutes.people,
    )
    try:
        await planner.run_plan(services, run, tell=tell)
    finally:
        await draft.release()


def _sprint_and_minutes(
    request: MentionRequest, mention: Mention, thread: list[Json], bot_user_id: str | None
) -> tuple[str | None, list[Json]]:
    """The sprint name and the messages of the minutes (minutes written in the mention itself
    are one message without a speaker)."""
    if request.is_plan:
        if request.minutes:
            return request.sprint, [{"text": request.minutes}]
        return request.sprint, _minutes_before(thread, mention.ts, bot_user_id)
    sprint = next((s for s in map(planner.asked_sprint, reversed(thread)) if s), None)
    if sprint is None:
        return None, []
    if request.text:
        return sprint, [{"text": request.text}]
    return sprint, _minutes_before(thread, mention.ts, bot_user_id)


def _minutes_before(thread: list[Json], ts: str, bot_user_id: str | None) -> list[Json]:
    """The messages before the mention that are minutes: people's and other apps' (not ours,
    not Slack's bookkeeping such as deleted parents and joins), not plan commands."""
    before = _ts_key(ts)
    return [
        m
        for m in thread
        if _ts_key(str(m.get("ts", "0"))) < before
        and is_minutes_message(m, bot_user_id)
        and not is_plan_command(str(m.get("text") or ""), bot_user_id)
        and has_content(m)
    ]


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return 0, 0
