"""`/taiga <subcommand>`: each subcommand is acknowledged at once; Taiga and Claude run after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks.kit import SlackMessage
from bot.connect.offer import offer_connect_link
from bot.middleware import with_link
from bot.services import accounts, planner
from bot.services.core import Services
from bot.services.parsing import Subcommand, parse_plan_args, parse_subcommand
from bot.services.slack_io import tell_by_response_url

COMMAND = "/taiga"
USAGE = """*Taiga Planner* turns meeting minutes into a Taiga sprint plan.
• `/taiga login` link your Taiga account (a private form, or a private one-time link)
• `/taiga logout` forget your link · `/taiga whoami` show it
• `/taiga project <slug or project URL>` set this channel's project · `/taiga project` show it
• `/taiga plan <sprint name>` with the minutes on the next lines: plan it in a thread
• or mention me in a thread: `@Taiga Planner plan <sprint name>` uses the thread as the minutes
Nothing is written to Taiga until someone approves the proposal."""

Handler = Callable[..., Awaitable[None]]


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(taiga_command)


async def taiga_command(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    sub = parse_subcommand(str(command.get("text") or ""))
    handler = SUBCOMMANDS.get(sub.name, show_usage)
    await handler(ack=ack, command=command, respond=respond, context=context, sub=sub)


async def open_login(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext,
    **_: Any,
) -> None:
    await ack()
    services: Services = context["services"]
    tell = tell_by_response_url(respond)
    if not services.settings.public_url:
        # Never queued: the trigger id is valid for 3 seconds.
        services.spawn_unbounded(
            accounts.open_login(services, trigger_id=command["trigger_id"], tell=tell),
            name="login",
        )
        return

    async def reply(message: SlackMessage) -> None:
        await respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())

    services.spawn(
        offer_connect_link(
            services, team_id=command["team_id"], user_id=command["user_id"], reply=reply
        ),
        name="connect-link", tell=tell,
    )


async def account(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
    sub: Subcommand,
    **_: Any,
) -> None:
    """`logout` and `whoami`: about the caller's own link."""
    await ack()
    services: Services = context["services"]
    work = accounts.logout if sub.name == "logout" else accounts.whoami
    tell = tell_by_response_url(respond)
    services.spawn(
        work(services, team_id=command["team_id"], user_id=command["user_id"], tell=tell),
        name=sub.name, tell=tell,
    )


async def project(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
    sub: Subcommand,
    **_: Any,
) -> None:
    await ack()
    services: Services = context["services"]
    tell = tell_by_response_url(respond)
    if not sub.rest:
        work = accounts.show_project(
            services, team_id=command["team_id"], channel_id=command["channel_id"], tell=tell
        )
    else:

        async def announce(text: str) -> None:
            await respond(text=text, response_type="in_channel", replace_original=False)

        work = with_link(
            services, command["team_id"], command["user_id"],
            lambda link: accounts.set_project(
                services, team_id=command["team_id"], channel_id=command["channel_id"],
                user_id=command["user_id"], argument=sub.rest, link=link,
                tell=tell, announce=announce,
            ),
        )
    services.spawn(work, name="project", tell=tell)


async def plan(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
    sub: Subcommand,
    **_: Any,
) -> None:
    await ack()
    services: Services = context["services"]
    request = parse_plan_args(sub.rest, sub.body)
    tell = tell_by_response_url(respond)
    work = with_link(
        services, command["team_id"], command["user_id"],
        lambda link: planner.plan_from_command(
            services, team_id=command["team_id"], channel_id=command["channel_id"],
            user_id=command["user_id"], sprint=request.sprint, raw_minutes=request.minutes,
            link=link, tell=tell,
        ),
    )
    services.spawn(work, name="plan-command", tell=tell)


async def show_usage(ack: AsyncAck, **_: Any) -> None:
    await ack(text=USAGE)


SUBCOMMANDS: dict[str, Handler] = {
    "login": open_login,
    "logout": account,
    "whoami": account,
    "project": project,
    "plan": plan,
    "help": show_usage,
}
