"""Async Taiga REST client (httpx): how a request reaches Taiga and comes back.

`TaigaClient` is built once per process; `TaigaClient.session(tokens)` gives one user's view
(`TaigaSession`, whose endpoint methods live in `taiga.endpoints`).

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
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from taiga.clock import Clock, SystemClock
from taiga.endpoints import SessionEndpoints
from taiga.errors import RateLimited, ResponseLost, TaigaError, Unauthorized, Unavailable
from taiga.models import AuthResult, TaigaTokens, TaigaUser
from taiga.overload import report_overload
from taiga.responses import error_for, parse_as, success_json, throttle_wait, token_rejected

__all__ = ["Clock", "RefreshHook", "SystemClock", "TaigaClient", "TaigaSession"]

log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_MAX_PAGES = 10_000
_MIN_CALL_SECONDS = 1.0
_EXPIRED_SIGN_IN = "Your Taiga sign-in has expired; sign in to Taiga again."


RefreshHook = Callable[[TaigaTokens], Awaitable[TaigaTokens]]
"""Called with the tokens that just got a 401; returns fresh tokens (the hook persists them and,
on a lost refresh race, re-reads the stored ones). The call is retried once with them."""


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
        body = success_json(response)
        return AuthResult(user=parse_as(TaigaUser, body), tokens=parse_as(TaigaTokens, body))

    async def refresh(self, refresh_token: str) -> TaigaTokens:
        """POST /auth/refresh. Taiga rotates the refresh token: the old one stops working."""
        response = await self.request("POST", "/auth/refresh", json={"refresh": refresh_token})
        if response.status_code == 401:
            raise Unauthorized(_EXPIRED_SIGN_IN, status=401)
        return parse_as(TaigaTokens, success_json(response))

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
                if exc.status is not None and exc.status >= 500:
                    report_overload(exc.status)
                delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**failures)
                if not is_read or failures >= self.read_retries or not self._fits(delay, deadline):
                    raise
                failures += 1
                log.info("taiga %s %s unavailable (%s); retry %d", method, path, exc, failures)
                await self.clock.sleep(delay)
                continue
            if response.status_code != 429:
                return response
            report_overload(429)
            wait = throttle_wait(response)
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
            raise Unavailable("Could not connect to Taiga.") from exc
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


# --------------------------------------------------------------------------- session


class TaigaSession(SessionEndpoints):
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

    # -- transport (what the `SessionEndpoints` methods call)

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
        if self._on_refresh is not None and token_rejected(response):
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
        return success_json(await self._call("GET", path, params=params), not_found=not_found)

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        return success_json(await self._call("POST", path, json=payload))

    async def _patch(self, path: str, payload: dict[str, Any]) -> Any:
        return success_json(await self._call("PATCH", path, json=payload))

    async def _delete(self, path: str) -> None:
        success_json(await self._call("DELETE", path))

    async def _get_all(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every item of a paginated list, paging against our own base URL."""
        items: list[Any] = []
        seen: set[Any] = set()
        for page in range(1, _MAX_PAGES + 1):
            query = {**params, "page": page, "page_size": self.client.page_size}
            response = await self._call("GET", path, params=query)
            if response.status_code == 404 and page > 1:
                break  # the list shrank while we paged
            body = success_json(response)
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
