"""Async Taiga REST client (httpx).

`TaigaClient` is built once per process; `TaigaClient.session(tokens)` gives one user's view.

Behaviour worth knowing:
- Lists page with `page`/`page_size` against the configured base URL; the absolute
  `X-Pagination-Next` URLs are never followed (they name the backend's own host).
- Every call has a timeout, cut to what is left of the session deadline (at least 1 s).
  GETs are retried with exponential backoff on `Unavailable`, bounded by `read_retries` and the
  deadline. Writes are never retried on failure; a write whose response is lost raises
  `ResponseLost` so the caller can reconcile.
- A 429 (which means nothing was applied) is slept through once via the injected `Clock` when
  `X-Throttle-Wait-Seconds` is at most `max_throttle_wait` and fits the deadline.
- A 401 `token_not_valid` (expired or invalid JWT) on a session call triggers the session's
  `on_refresh` hook once (one refresh per session even under concurrency), then the call is
  repeated once. Other 401s (no token arrived) are raised without spending the refresh token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from taiga.errors import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    ResponseLost,
    TaigaError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from taiga.models import AuthResult, Milestone, Project, TaigaTokens, TaigaUser, Task, UserStory

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_MAX_PAGES = 10_000
_DEFAULT_THROTTLE_WAIT = 60.0
_MIN_CALL_SECONDS = 1.0
_EXPIRED_SIGN_IN = "Your Taiga sign-in has expired; sign in to Taiga again."


class Clock(Protocol):
    """Time source; tests pass a fake that records sleeps and advances time."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


RefreshHook = Callable[[TaigaTokens], Awaitable[TaigaTokens]]
"""Called with the tokens that just got a 401; returns fresh tokens (the hook persists them and,
on a lost refresh race, re-reads the stored ones). The call is retried once with them."""


# --------------------------------------------------------------------------- error mapping


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def _body(response: httpx.Response) -> Any:
    """The JSON body, or None when it is not JSON (e.g. Django's HTML error pages)."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _field_messages(body: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in body.items():
        if name.startswith("_error"):
            continue
        if isinstance(value, list):
            fields[name] = [str(item) for item in value]
        else:
            fields[name] = [str(value)]
    return fields


def _taiga_words(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        inner = messages[0].get("message")
        if isinstance(inner, str) and inner:
            return inner
    for key in ("_error_message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _throttle_wait(response: httpx.Response) -> float:
    for header in ("x-throttle-wait-seconds", "retry-after"):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    match = re.search(r"available in (\d+(?:\.\d+)?) second", _taiga_words(_body(response)))
    return float(match.group(1)) + 1 if match else _DEFAULT_THROTTLE_WAIT


def error_for(response: httpx.Response, *, not_found: str | None = None) -> TaigaError:
    """Translate a non-2xx Taiga response into one of our exceptions."""
    status = response.status_code
    body = _body(response)
    words = _taiga_words(body)
    if status == 429:
        return RateLimited(_throttle_wait(response))
    if status >= 500:
        return Unavailable(
            f"Taiga is having trouble (HTTP {status}); try again in a moment.", status=status
        )
    if body is None:
        return Unavailable(
            f"Taiga answered HTTP {status} with a web page instead of API data; check that the "
            "Taiga API URL is right (it usually ends in /api/v1).",
            status=status,
        )
    if status == 400:
        fields = _field_messages(body) if isinstance(body, dict) else {}
        detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
        return ValidationFailed(
            _sentence(f"Taiga rejected the request: {detail or words or 'invalid data'}"),
            fields=fields,
        )
    if status == 401:
        if isinstance(body, dict) and body.get("code") == "invalid_credentials":
            return BadCredentials(
                _sentence(words or "Taiga did not accept that username and password"), status=401
            )
        if isinstance(body, dict) and body.get("code") == "token_not_valid":
            return Unauthorized(
                f"Your Taiga sign-in is no longer valid ({_sentence(words)[:-1] or 'expired'}).",
                status=401,
            )
        return Unauthorized(
            _sentence(f"Taiga needs you to sign in: {words or 'no credentials were sent'}"),
            status=401,
        )
    if status == 403:
        return Forbidden(
            _sentence(words or "You do not have permission to do that in Taiga"), status=403
        )
    if status == 404:
        return NotFound(_sentence(not_found or words or "Taiga could not find that"), status=404)
    return TaigaError(_sentence(words or f"Taiga answered HTTP {status}"), status=status)


def _token_rejected(response: httpx.Response) -> bool:
    """A 401 for an expired or invalid JWT (`token_not_valid`), which a refresh can cure; not
    Taiga's NotAuthenticated (no bearer token arrived) nor a proxy's own 401."""
    if response.status_code != 401:
        return False
    body = _body(response)
    return isinstance(body, dict) and body.get("code") == "token_not_valid"


def _parse(model: type[M], data: Any) -> M:
    """The body as `model`, or our error. Pydantic's error echoes the input (an /auth body holds
    the tokens), so it is not chained; only the failing fields are logged, never their values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        log.warning("taiga sent a %s we cannot parse (%s)", model.__name__, problems)
    raise TaigaError(
        f"Taiga sent a {model.__name__} this bot does not understand; "
        "is the Taiga version supported?"
    )


def _norm_name(name: str) -> str:
    return "".join(name.split()).casefold()


# --------------------------------------------------------------------------- client


class TaigaClient:
    """One per process: holds the httpx client, the clock and the retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        max_throttle_wait: float = 10.0,
        read_retries: int = 2,
        timeout: float = 15.0,
        page_size: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )
        self.clock: Clock = clock or SystemClock()
        self.max_throttle_wait = max_throttle_wait
        self.read_retries = read_retries
        self.page_size = max(1, min(page_size, 1000))

    def __repr__(self) -> str:
        return f"TaigaClient({self.base_url!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> TaigaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- auth

    async def login(self, username: str, password: str) -> AuthResult:
        """POST /auth (type=normal); `username` may also be the e-mail address."""
        response = await self.request(
            "POST", "/auth", json={"type": "normal", "username": username, "password": password}
        )
        body = self.json(response)
        return AuthResult(user=_parse(TaigaUser, body), tokens=_parse(TaigaTokens, body))

    async def refresh(self, refresh_token: str) -> TaigaTokens:
        """POST /auth/refresh. Taiga rotates the refresh token: the old one stops working."""
        response = await self.request("POST", "/auth/refresh", json={"refresh": refresh_token})
        if response.status_code == 401:
            raise Unauthorized(_EXPIRED_SIGN_IN, status=401)
        return _parse(TaigaTokens, self.json(response))

    def session(
        self,
        tokens: TaigaTokens,
        *,
        on_refresh: RefreshHook | None = None,
        deadline: float | None = None,
    ) -> TaigaSession:
        """One user's view. `deadline` is in `clock.now()` terms and bounds retries and waits."""
        return TaigaSession(self, tokens, on_refresh=on_refresh, deadline=deadline)

    # -- transport

    def _fits(self, delay: float, deadline: float | None) -> bool:
        return deadline is None or self.clock.now() + delay <= deadline

    def _timeout_before(self, deadline: float | None) -> httpx.Timeout:
        """The per-call timeout, cut to what is left before `deadline` (at least
        `_MIN_CALL_SECONDS`: the caller, not the client, decides what a passed deadline stops)."""
        if deadline is None:
            return self._timeout
        left = max(deadline - self.clock.now(), _MIN_CALL_SECONDS)
        full = self._timeout
        return httpx.Timeout(
            connect=min(full.connect or left, left),
            read=min(full.read or left, left),
            write=min(full.write or left, left),
            pool=min(full.pool or left, left),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        token: SecretStr | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send one logical request with the retry policy; returns any non-429, non-5xx answer."""
        is_read = method.upper() in _READ_METHODS
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        failures = 0
        throttled = False
        while True:
            limits = self._timeout_before(deadline)
            try:
                response = await self._send_once(
                    method, path, params, json, headers, is_read, limits
                )
            except Unavailable as exc:
                delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**failures)
                if not is_read or failures >= self.read_retries or not self._fits(delay, deadline):
                    raise
                failures += 1
                log.info("taiga %s %s unavailable (%s); retry %d", method, path, exc, failures)
                await self.clock.sleep(delay)
                continue
            if response.status_code != 429:
                return response
            wait = _throttle_wait(response)
            if throttled or wait > self.max_throttle_wait or not self._fits(wait, deadline):
                raise RateLimited(wait)
            throttled = True
            log.info("taiga %s %s throttled; waiting %.1f s", method, path, wait)
            await self.clock.sleep(wait)

    async def _send_once(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        headers: dict[str, str],
        is_read: bool,
        limits: httpx.Timeout,
    ) -> httpx.Response:
        url = self.base_url + path
        try:
            response = await self._http.request(
                method, url, params=params, json=json, headers=headers, timeout=limits
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Unavailable("Could not connect to Taiga; try again in a moment.") from exc
        except httpx.TimeoutException as exc:
            if not is_read:
                raise ResponseLost(
                    "Taiga did not answer in time; the change may or may not have been saved."
                ) from exc
            raise Unavailable("Taiga did not answer in time; try again in a moment.") from exc
        except httpx.TransportError as exc:
            if not is_read:
                raise ResponseLost(
                    "The connection to Taiga dropped before it answered; the change may or may "
                    "not have been saved."
                ) from exc
            raise Unavailable(
                "The connection to Taiga dropped before it answered; try again in a moment."
            ) from exc
        log.debug("taiga %s %s -> %d", method, path, response.status_code)
        if response.status_code >= 500:
            if not is_read and response.status_code in (502, 504):
                # A gateway gave up waiting: the backend may still have applied the write.
                raise ResponseLost(
                    f"Taiga's gateway answered HTTP {response.status_code}; the change may or "
                    "may not have been saved.",
                    status=response.status_code,
                )
            raise error_for(response)
        return response

    @staticmethod
    def json(response: httpx.Response, *, not_found: str | None = None) -> Any:
        """The body of a 2xx response, or the matching exception."""
        if not response.is_success:
            raise error_for(response, not_found=not_found)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(
                "Taiga sent a response that is not JSON; check the Taiga API URL.",
                status=response.status_code,
            ) from exc


# --------------------------------------------------------------------------- session


class TaigaSession:
    """One user's view of Taiga. `.tokens` is the current pair (replaced after a refresh)."""

    def __init__(
        self,
        client: TaigaClient,
        tokens: TaigaTokens,
        *,
        on_refresh: RefreshHook | None = None,
        deadline: float | None = None,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.deadline = deadline
        self._on_refresh = on_refresh
        self._refresh_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TaigaSession({self.client.base_url!r}, deadline={self.deadline!r})"

    # -- plumbing

    async def _refreshed(self, stale: TaigaTokens) -> TaigaTokens:
        assert self._on_refresh is not None
        async with self._refresh_lock:
            current = self.tokens
            if current.auth_token.get_secret_value() != stale.auth_token.get_secret_value():
                return current  # another call in this session refreshed meanwhile
            fresh = await self._on_refresh(stale)
            self.tokens = fresh
            return fresh

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        tokens = self.tokens
        response = await self.client.request(
            method, path, params=params, json=json, token=tokens.auth_token, deadline=self.deadline
        )
        if self._on_refresh is not None and _token_rejected(response):
            fresh = await self._refreshed(tokens)
            response = await self.client.request(
                method,
                path,
                params=params,
                json=json,
                token=fresh.auth_token,
                deadline=self.deadline,
            )
        return response

    async def _get(
        self, path: str, params: dict[str, Any] | None = None, *, not_found: str | None = None
    ) -> Any:
        return self.client.json(await self._call("GET", path, params=params), not_found=not_found)

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        return self.client.json(await self._call("POST", path, json=payload))

    async def _get_all(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every item of a paginated list, paging against our own base URL."""
        items: list[Any] = []
        seen: set[Any] = set()
        for page in range(1, _MAX_PAGES + 1):
            query = {**params, "page": page, "page_size": self.client.page_size}
            response = await self._call("GET", path, params=query)
            if response.status_code == 404 and page > 1:
                break  # the list shrank while we paged
            body = self.client.json(response)
            if not isinstance(body, list):
                raise TaigaError("Taiga sent something other than a list; is the URL right?")
            for item in body:
                key = item.get("id") if isinstance(item, dict) else None
                if key is not None and key in seen:
                    continue  # shifted onto the next page by a concurrent insert
                if key is not None:
                    seen.add(key)
                items.append(item)
            paginated = response.headers.get("x-paginated", "").lower() == "true"
            if not body or not paginated or "x-pagination-next" not in response.headers:
                break
        return items

    # -- reads

    async def me(self) -> TaigaUser:
        return _parse(TaigaUser, await self._get("/users/me"))

    async def get_project(self, project_id: int) -> Project:
        body = await self._get(
            f"/projects/{int(project_id)}", not_found=f"Project {project_id} was not found"
        )
        return _parse(Project, body)

    async def get_project_by_slug(self, slug: str) -> Project:
        body = await self._get(
            "/projects/by_slug",
            {"slug": slug},
            not_found=f"Project '{slug}' was not found, or you are not a member of it",
        )
        return _parse(Project, body)

    async def list_milestones(self, project_id: int) -> list[Milestone]:
        """All sprints of the project, newest first (Taiga orders by -estimated_start)."""
        items = await self._get_all("/milestones", {"project": int(project_id)})
        return [_parse(Milestone, item) for item in items]

    async def get_milestone(self, milestone_id: int) -> Milestone:
        body = await self._get(
            f"/milestones/{int(milestone_id)}", not_found=f"Sprint {milestone_id} was not found"
        )
        return _parse(Milestone, body)

    async def get_milestone_by_name(self, project_id: int, name: str) -> Milestone | None:
        """The sprint whose name matches ignoring case and whitespace ("sprint6" = "Sprint 6")."""
        wanted = _norm_name(name)
        for milestone in await self.list_milestones(project_id):
            if _norm_name(milestone.name) == wanted:
                return milestone
        return None

    async def list_user_stories(
        self, project_id: int, *, milestone_id: int | None = None, backlog: bool = False
    ) -> list[UserStory]:
        if backlog and milestone_id is not None:
            raise ValueError("pass either milestone_id or backlog=True, not both")
        params: dict[str, Any] = {"project": int(project_id)}
        if milestone_id is not None:
            params["milestone"] = int(milestone_id)
        if backlog:
            params["milestone__isnull"] = "true"
        return [_parse(UserStory, item) for item in await self._get_all("/userstories", params)]

    async def get_user_story(self, story_id: int) -> UserStory:
        body = await self._get(
            f"/userstories/{int(story_id)}", not_found=f"User story {story_id} was not found"
        )
        return _parse(UserStory, body)

    async def list_tasks(
        self,
        *,
        user_story_id: int | None = None,
        project_id: int | None = None,
        milestone_id: int | None = None,
    ) -> list[Task]:
        params: dict[str, Any] = {}
        if user_story_id is not None:
            params["user_story"] = int(user_story_id)
        if project_id is not None:
            params["project"] = int(project_id)
        if milestone_id is not None:
            params["milestone"] = int(milestone_id)
        if not params:
            raise ValueError("list_tasks needs user_story_id, project_id or milestone_id")
        return [_parse(Task, item) for item in await self._get_all("/tasks", params)]

    # -- writes (never retried on failure; ResponseLost when the answer went missing)

    async def create_milestone(
        self, project_id: int, name: str, start: date, finish: date
    ) -> Milestone:
        body = await self._post(
            "/milestones",
            {
                "project": int(project_id),
                "name": name,
                "estimated_start": start.isoformat(),
                "estimated_finish": finish.isoformat(),
            },
        )
        return _parse(Milestone, body)

    async def create_user_story(
        self,
        project_id: int,
        subject: str,
        *,
        description: str = "",
        milestone_id: int | None = None,
        tags: list[str] | None = None,
    ) -> UserStory:
        payload: dict[str, Any] = {"project": int(project_id), "subject": subject}
        if description:
            payload["description"] = description
        if milestone_id is not None:
            payload["milestone"] = int(milestone_id)
        if tags:
            payload["tags"] = list(tags)
        return _parse(UserStory, await self._post("/userstories", payload))

    async def create_task(
        self,
        project_id: int,
        subject: str,
        *,
        user_story_id: int | None = None,
        milestone_id: int | None = None,
        description: str = "",
    ) -> Task:
        payload: dict[str, Any] = {"project": int(project_id), "subject": subject}
        if user_story_id is not None:
            payload["user_story"] = int(user_story_id)
        if milestone_id is not None:
            payload["milestone"] = int(milestone_id)
        if description:
            payload["description"] = description
        return _parse(Task, await self._post("/tasks", payload))
