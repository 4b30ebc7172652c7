"""Linking a Slack user to Taiga (`/taiga login|logout|whoami`) and the channel's project."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlmodel import Session

from agent.errors import describe
from agent.identity import LinkExpired
from bot.blocks.login import AUTH_TOKEN, PASSWORD, REFRESH_TOKEN, USERNAME, linked_view, login_view
from bot.middleware import find_link
from bot.services.core import Services
from bot.services.errors import NOT_LINKED, explain, is_link_expired, log_failure
from bot.services.home import refresh_home_later
from bot.services.parsing import project_ref
from bot.services.slack_io import Tell, direct_message, esc
from storage import repositories as repo
from taiga.errors import BadCredentials, TaigaError, Unauthorized
from taiga.models import TaigaTokens, TaigaUser

logger = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoginForm:
    username: str
    password: str = ""
    auth_token: str = ""
    refresh_token: str = ""

    def __repr__(self) -> str:  # never show what was typed into the secret fields
        return f"LoginForm(username={self.username!r})"

    @classmethod
    def from_view(cls, view: Json) -> LoginForm:
        values = (view.get("state") or {}).get("values") or {}

        def read(block_id: str) -> str:
            field = (values.get(block_id) or {}).get(block_id) or {}
            return str(field.get("value") or "").strip()

        return cls(read(USERNAME), read(PASSWORD), read(AUTH_TOKEN), read(REFRESH_TOKEN))


@dataclass(frozen=True, slots=True)
class FieldError:
    """A sign-in problem and the form field (`USERNAME`, `PASSWORD`, `AUTH_TOKEN`) it is about."""

    field: str
    message: str


def failure_field(form: LoginForm, error: TaigaError) -> FieldError:
    """Where a failed sign-in at Taiga is shown, and in what words."""
    if isinstance(error, BadCredentials):
        return FieldError(PASSWORD, describe(error))
    if isinstance(error, Unauthorized):
        return FieldError(AUTH_TOKEN, describe(error))
    return FieldError(_main_field(form), describe(error))


def timed_out(form: LoginForm) -> FieldError:
    return FieldError(_main_field(form), "Taiga did not answer in time; please try again.")


def _errors(problem: FieldError) -> Json:
    return {"response_action": "errors", "errors": {problem.field: problem.message}}


async def submit_login(services: Services, *, team_id: str, user_id: str, view: Json) -> Json:
    """Sign in at Taiga (bounded by `login_timeout`); returns the ack payload: the modal's field
    errors, or an updated modal confirming the link. The tokens are stored after the ack (a
    database write need not hold Slack's answer); if that fails the user is told by DM."""
    form = LoginForm.from_view(view)
    problem = form_problem(form)
    if problem is not None:
        return _errors(problem)
    try:
        user, tokens = await sign_in(services, form, seconds=services.login_timeout)
    except TimeoutError:
        return _errors(timed_out(form))
    except TaigaError as error:
        log_failure("Taiga sign-in failed", error)
        return _errors(failure_field(form, error))
    services.spawn_unbounded(
        _store_after_ack(services, team_id=team_id, user_id=user_id, user=user, tokens=tokens),
        name="save-login",
    )
    return {"response_action": "update", "view": linked_view(user.username)}


async def store_link(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    user: TaigaUser,
    tokens: TaigaTokens,
    only_if: Callable[[Session], bool] | None = None,
) -> bool:
    """Store the Slack user's link to `user`, its tokens encrypted, in one transaction with
    `only_if` (which may refuse: nothing is stored then); refresh their App Home. True if
    stored."""
    stored = repo.StoredTokens(
        auth_token=tokens.auth_token.get_secret_value(),
        refresh_token=tokens.refresh.get_secret_value() if tokens.refresh else None,
    )
    cipher = services.cipher

    def save(session: Session) -> bool:
        if only_if is not None and not only_if(session):
            return False
        repo.save_link(
            session, cipher=cipher, team_id=team_id, user_id=user_id,
            taiga_user_id=user.id, taiga_username=user.username, tokens=stored,
            taiga_full_name=user.full_name_display or None,
        )
        return True

    if not await services.db.run(save):
        return False
    logger.info("linked %s/%s to Taiga user %s", team_id, user_id, user.id)
    refresh_home_later(services, team_id=team_id, user_id=user_id)
    return True


async def _store_after_ack(
    services: Services, *, team_id: str, user_id: str, user: TaigaUser, tokens: TaigaTokens
) -> None:
    """The modal's link, stored once Slack has its answer; a failure is told by DM."""
    try:
        await store_link(services, team_id=team_id, user_id=user_id, user=user, tokens=tokens)
    except Exception as error:
        log_failure("could not store a Taiga link", error)
        await direct_message(
            services.slack, user=user_id,
            text="I could not save your Taiga link; please run `/taiga login` again.",
        )


def _main_field(form: LoginForm) -> str:
    return USERNAME if form.username else AUTH_TOKEN


def form_problem(form: LoginForm) -> FieldError | None:
    """What is missing from the form before anything is sent to Taiga."""
    if form.username and not form.password:
        return FieldError(PASSWORD, "Enter your Taiga password.")
    if form.password and not form.username:
        return FieldError(USERNAME, "Enter your Taiga username or e-mail.")
    if not form.username and not form.auth_token:
        return FieldError(USERNAME, "Enter your username and password, or an auth token.")
    if form.refresh_token and not form.auth_token:
        return FieldError(AUTH_TOKEN, "A refresh token needs its auth token.")
    return None


async def sign_in(
    services: Services, form: LoginForm, *, seconds: float
) -> tuple[TaigaUser, TaigaTokens]:
    """Exchange the form at Taiga for tokens, within `seconds` (else `TimeoutError`)."""
    async with asyncio.timeout(seconds):
        if form.username:
            result = await services.taiga.login(form.username, form.password)
            return result.user, result.tokens
        tokens = TaigaTokens(
            auth_token=SecretStr(form.auth_token),
            refresh=SecretStr(form.refresh_token) if form.refresh_token else None,
        )
        session = services.taiga.session(tokens)
        return await session.me(), tokens


async def open_login(services: Services, *, trigger_id: str, tell: Tell) -> None:
    """views.open at once: the trigger id is valid for 3 seconds."""
    try:
        await services.slack.views_open(trigger_id=trigger_id, view=login_view())
    except Exception as error:
        log_failure("could not open the login form", error)
        await tell("I could not open the login form; please run /taiga login again.")


async def logout(services: Services, *, team_id: str, user_id: str, tell: Tell) -> None:
    removed = await unlink(services, team_id=team_id, user_id=user_id)
    await tell(
        "Your Taiga link is removed; the bot no longer holds a token for you."
        if removed
        else "Your Slack account was not linked to Taiga."
    )


async def unlink(services: Services, *, team_id: str, user_id: str) -> bool:
    """Forget the user's link and refresh their App Home; True if there was one."""
    removed = await services.db.run(
        lambda s: repo.delete_link(s, team_id=team_id, user_id=user_id)
    )
    refresh_home_later(services, team_id=team_id, user_id=user_id)
    return removed


async def whoami(services: Services, *, team_id: str, user_id: str, tell: Tell) -> None:
    link = await find_link(services, team_id, user_id)
    if link is None:
        await tell(NOT_LINKED)
        return
    await tell(f"You are linked to Taiga as *{esc(link.taiga_username)}*.")


async def show_project(services: Services, *, team_id: str, channel_id: str, tell: Tell) -> None:
    current = await services.db.run(
        lambda s: repo.get_channel_project(s, team_id=team_id, channel_id=channel_id)
    )
    if current is None:
        await tell(
            "This channel has no default Taiga project. Set one with "
            "`/taiga project <slug or project URL>`."
        )
        return
    await tell(
        f"This channel plans in *{esc(current.project_name)}* (`{esc(current.project_slug)}`)."
    )


async def set_project(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    argument: str,
    link: repo.TaigaLinkView | None,
    tell: Tell,
    announce: Tell,
) -> None:
    """Check the project with the caller's own token, then make it the channel's default."""
    if link is None:
        await tell(NOT_LINKED)
        return
    slug = project_ref(argument)
    if slug is None:
        await tell(
            "Give a project slug or its Taiga URL, e.g. `/taiga project acme-web` or "
            "`/taiga project https://tree.taiga.io/project/acme-web`."
        )
        return
    try:
        project = await services.refresher.session(link).get_project_by_slug(slug)
    except (TaigaError, LinkExpired) as error:
        log_failure(f"checking project {slug} failed", error)
        await tell(esc(explain(error, project=slug, permission="view_project")))
        if is_link_expired(error):
            await tell_link_expired(services, user_id=user_id, text=explain(error))
        return
    await services.db.run(
        lambda s: repo.set_channel_project(
            s,
            team_id=team_id,
            channel_id=channel_id,
            project_id=project.id,
            project_slug=project.slug,
            project_name=project.name,
            set_by=user_id,
        )
    )
    await announce(
        f"<@{user_id}> set this channel's Taiga project to *{esc(project.name)}* "
        f"(`{esc(project.slug)}`)."
    )


async def tell_link_expired(services: Services, *, user_id: str, text: str) -> None:
    """A direct message to a user whose Taiga link died (refresh rejected)."""
    try:
        await direct_message(services.slack, user=user_id, text=text)
    except Exception as error:
        log_failure("could not send the expired-link message", error)
