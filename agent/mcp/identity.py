"""Whose Taiga account an MCP call acts as: always the person's own, never a service account.

- stdio (one person runs the server for themselves): `TAIGA_AUTH_TOKEN` (and, to outlive its
  expiry, `TAIGA_REFRESH_TOKEN`), or `TAIGA_USERNAME` + `TAIGA_PASSWORD`, read from the server's
  environment and signed in on first use. Refreshed tokens are kept for the life of the process.
- streamable HTTP: every request carries `Authorization: Bearer <Taiga access token>`, and
  optionally `X-Taiga-Refresh-Token`. Nothing is stored. Taiga rotates refresh tokens, so after
  we refresh a caller's tokens their old pair is dead: the process remembers the new pair under
  a hash of the token the caller keeps presenting, and their next request acts with it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from typing import Protocol

from pydantic import SecretStr
from starlette.requests import Request

from agent.identity import RequestTokens
from taiga.client import TaigaClient
from taiga.models import TaigaTokens

REFRESH_HEADER = "x-taiga-refresh-token"
REMEMBERED_CALLERS = 1024


class NoTaigaIdentity(Exception):
    """The call says nothing about who it acts as; the message says how to say it."""


class Identity(Protocol):
    async def tokens(self, request: Request | None) -> RequestTokens:
        """The tokens the call acts with (`request`: the HTTP request, None over stdio)."""
        ...


class EnvironmentIdentity:
    """stdio: the person who started the server, from its environment."""

    def __init__(
        self,
        taiga: TaigaClient,
        *,
        auth_token: str = "",
        refresh_token: str = "",
        username: str = "",
        password: SecretStr | None = None,
    ) -> None:
        self._taiga = taiga
        self._initial = (
            TaigaTokens(
                auth_token=SecretStr(auth_token),
                refresh=SecretStr(refresh_token) if refresh_token else None,
            )
            if auth_token
            else None
        )
        self._username = username
        self._password = password
        self._tokens: RequestTokens | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"EnvironmentIdentity(username={self._username!r})"

    async def tokens(self, request: Request | None) -> RequestTokens:
        async with self._lock:
            if self._tokens is None:
                self._tokens = RequestTokens(self._taiga, await self._sign_in())
            return self._tokens

    async def _sign_in(self) -> TaigaTokens:
        if self._initial is not None:
            return self._initial
        if not (self._username and self._password and self._password.get_secret_value()):
            raise NoTaigaIdentity(
                "Set TAIGA_AUTH_TOKEN, or TAIGA_USERNAME and TAIGA_PASSWORD, in the MCP server's "
                "environment."
            )
        login = await self._taiga.login(self._username, self._password.get_secret_value())
        return login.tokens


class BearerIdentity:
    """streamable HTTP: the caller's own Taiga token on every request."""

    def __init__(self, taiga: TaigaClient, *, capacity: int = REMEMBERED_CALLERS) -> None:
        self._taiga = taiga
        self._capacity = capacity
        self._callers: OrderedDict[str, RequestTokens] = OrderedDict()

    def __repr__(self) -> str:
        return f"BearerIdentity({len(self._callers)} callers)"

    async def tokens(self, request: Request | None) -> RequestTokens:
        presented = bearer_token(request)
        if presented is None:
            raise NoTaigaIdentity(MISSING_BEARER)
        key = hashlib.sha256(presented.encode()).hexdigest()
        known = self._callers.get(key)
        if known is not None:
            self._callers.move_to_end(key)
            return known
        refresh = request.headers.get(REFRESH_HEADER, "").strip() if request else ""
        tokens = RequestTokens(
            self._taiga,
            TaigaTokens(
                auth_token=SecretStr(presented), refresh=SecretStr(refresh) if refresh else None
            ),
        )
        self._callers[key] = tokens
        while len(self._callers) > self._capacity:
            self._callers.popitem(last=False)
        return tokens


MISSING_BEARER = (
    "Send your Taiga access token as 'Authorization: Bearer <token>' (and, so an expired one "
    "can be renewed, your refresh token as 'X-Taiga-Refresh-Token')."
)


def bearer_token(request: Request | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    if request is None:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
