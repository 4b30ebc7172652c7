"""`GET/POST /connect/<token>`: the password-free connect page.

GET shows the sign-in form (or says the link is used, expired or unknown); POST checks the CSRF
value, signs in at Taiga exactly as the login modal does (`bot.services.accounts`), and stores
the link only if this request claims the one-time link (one conditional UPDATE, so a second
use, on any replica, is refused). The password is never logged, stored or echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from agent.errors import is_token_rejected
from agent.settings import Settings
from bot.connect.links import LINK_LIFETIME, connect_path, token_hash
from bot.connect.page import NEW_LINK_HINT, FormPage, form_page, outcome_page
from bot.connect.security import (
    CSRF_COOKIE,
    HEADERS,
    csrf_ok,
    new_csrf,
    redact_access_log,
    same_origin,
)
from bot.services import accounts
from bot.services.core import Services
from bot.services.errors import log_failure
from bot.services.slack_io import direct_message, esc
from storage import repositories as repo
from taiga.errors import TaigaError

logger = logging.getLogger(__name__)

# A person at a browser can wait longer than Slack's 3 seconds for Taiga.
SIGN_IN_TIMEOUT_SECONDS = 15.0
MAX_FAILED_ATTEMPTS = 5
MAX_FORM_BYTES = 16_384
FIELDS = ("csrf", "username", "password", "auth_token", "refresh_token")

_REFUSED = {
    repo.LinkState.USED: ("Link already used", f"This link was already used. {NEW_LINK_HINT}"),
    repo.LinkState.EXPIRED: ("Link expired", f"This link has expired. {NEW_LINK_HINT}"),
    repo.LinkState.UNKNOWN: ("Link not valid", f"This link is not valid. {NEW_LINK_HINT}"),
}
_STATUS = {repo.LinkState.USED: 410, repo.LinkState.EXPIRED: 410, repo.LinkState.UNKNOWN: 404}


def mount_connect_page(
    app: FastAPI, settings: Settings, get_services: Callable[[], Services]
) -> None:
    """Serve the connect page when PUBLIC_URL is set (without it the login modal is used)."""
    if settings.public_url:
        redact_access_log()
        app.include_router(connect_router(settings.public_url, get_services))


def connect_router(public_url: str, get_services: Callable[[], Services]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/connect/{token}")
    async def show(token: str) -> HTMLResponse:
        services = get_services()
        link = await _read(services, token)
        if link.state is not repo.LinkState.USABLE:
            return _refused(link.state)
        return _form(services, token, FormPage(csrf=new_csrf(token), taiga=_taiga(services)))

    @router.post("/connect/{token}")
    async def submit(token: str, request: Request) -> HTMLResponse:
        services = get_services()
        link = await _read(services, token)
        if link.state is not repo.LinkState.USABLE:
            return _refused(link.state)
        values = await _form_values(request)
        if values is None or not (
            same_origin(request.headers.get("origin"), public_url)
            and csrf_ok(token, field=values["csrf"], cookie=request.cookies.get(CSRF_COOKIE))
        ):
            return _page(
                outcome_page("Please try again", "This form could not be verified (it was "
                             "sent from elsewhere, or the page is too old). Open the link "
                             "from Slack again."),
                403,
            )
        form = accounts.LoginForm(
            values["username"].strip(), values["password"], values["auth_token"].strip(),
            values["refresh_token"].strip(),
        )
        return await _connect(services, token, link, form)

    return router


async def _connect(
    services: Services, token: str, link: repo.ConnectLinkView, form: accounts.LoginForm
) -> HTMLResponse:
    problem = accounts.form_problem(form)
    if problem is not None:
        return _retry(services, token, form, problem.message)
    try:
        user, tokens = await accounts.sign_in(services, form, seconds=SIGN_IN_TIMEOUT_SECONDS)
    except TimeoutError:
        return _retry(services, token, form, accounts.timed_out(form).message)
    except TaigaError as error:
        log_failure("Taiga sign-in from the connect page failed", error)
        # Only a refused password or token counts against the link, not Taiga being down.
        if is_token_rejected(error) and not await _count_failure(services, token):
            return _refused_after_failures()
        return _retry(services, token, form, accounts.failure_field(form, error).message)
    digest, now = token_hash(token), services.now()

    def claim(session: Session) -> bool:
        return repo.claim_connect_link(session, token_hash=digest, now=now)

    stored = await accounts.store_link(
        services, team_id=link.team_id, user_id=link.user_id, user=user, tokens=tokens,
        only_if=claim,
    )
    if not stored:
        return _refused(repo.LinkState.USED)
    services.spawn_unbounded(
        _confirm_in_slack(services, link.user_id, user.username), name="connected"
    )
    return _page(
        outcome_page(
            "Connected",
            f"Your Slack account is linked to Taiga as {user.username}. You can close this "
            "tab and go back to Slack.",
            done=True,
        ),
        200,
    )


async def _confirm_in_slack(services: Services, user_id: str, username: str) -> None:
    try:
        await direct_message(
            services.slack, user=user_id,
            text=f":white_check_mark: You are linked to Taiga as *{esc(username)}*. "
            "`/taiga logout` (or Disconnect in my Home tab) removes the link.",
        )
    except Exception as error:
        log_failure("could not confirm the link in Slack", error)


async def _read(services: Services, token: str) -> repo.ConnectLinkView:
    digest, now = token_hash(token), services.now()
    return await services.db.run(lambda s: repo.read_connect_link(s, token_hash=digest, now=now))


async def _count_failure(services: Services, token: str) -> bool:
    digest, now = token_hash(token), services.now()
    return await services.db.run(
        lambda s: repo.count_failed_attempt(
            s, token_hash=digest, now=now, allowed=MAX_FAILED_ATTEMPTS
        )
    )


async def _form_values(request: Request) -> dict[str, str] | None:
    """The posted form's fields (missing ones empty), or None for anything but a small
    urlencoded form."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: (parsed.get(name) or [""])[0] for name in FIELDS}


def _retry(services: Services, token: str, form: accounts.LoginForm, error: str) -> HTMLResponse:
    page = FormPage(csrf=new_csrf(token), taiga=_taiga(services), username=form.username,
                    error=error)
    return _form(services, token, page, status=400)


def _form(services: Services, token: str, page: FormPage, *, status: int = 200) -> HTMLResponse:
    response = _page(form_page(page), status)
    response.set_cookie(
        CSRF_COOKIE, page.csrf, max_age=int(LINK_LIFETIME.total_seconds()),
        path=connect_path(token), secure=services.settings.public_url.startswith("https://"),
        httponly=True, samesite="strict",
    )
    return response


def _refused(state: repo.LinkState) -> HTMLResponse:
    title, sentence = _REFUSED[state]
    return _page(outcome_page(title, sentence), _STATUS[state])


def _refused_after_failures() -> HTMLResponse:
    sentence = f"Too many failed sign-ins: this link no longer works. {NEW_LINK_HINT}"
    return _page(outcome_page("Link used up", sentence), 410)


def _page(html: str, status: int) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _taiga(services: Services) -> str:
    return urlsplit(services.settings.taiga_web_url).netloc or services.settings.taiga_web_url
