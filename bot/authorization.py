"""Bolt's authorization for our single workspace, off the ack path.

Bolt's default single-workspace authorization calls `auth.test` on the first request, and every
request that arrives before that answer calls it again: under a burst each of them waits on
Slack before it can be acknowledged. `BotIdentity` asks once (concurrent first requests share the
one call; a failure is not kept, the next request asks again), can be asked ahead at start-up
(`warm`), and answers every later request from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.services.errors import log_failure

logger = logging.getLogger(__name__)


class BotIdentity:
    """The bot's identity from one shared `auth.test`; `bolt_authorize` hands it to Bolt."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._answer: AsyncSlackResponse | None = None
        self._asking: asyncio.Task[AsyncSlackResponse] | None = None

    async def warm(self) -> None:
        """Ask Slack now, so the first request finds the answer (a failure is only logged)."""
        try:
            await self._auth_test()
        except Exception as error:
            log_failure("auth.test at start-up failed", error)

    def learn(self, answer: AsyncSlackResponse) -> None:
        """Take an `auth.test` answer someone else already asked for."""
        self._answer = answer

    async def authorize(self, user_id: str | None) -> AuthorizeResult:
        """What Bolt puts in a request's context: the bot's ids and token, and who is asking."""
        answer = await self._auth_test()
        token = self._client.token
        return AuthorizeResult(
            enterprise_id=answer.get("enterprise_id"),
            team_id=answer.get("team_id"),
            bot_id=answer.get("bot_id"),
            bot_user_id=answer.get("user_id"),
            bot_token=token,
            bot_scopes=answer.headers.get("x-oauth-scopes"),
            user_id=user_id,
        )

    async def _auth_test(self) -> AsyncSlackResponse:
        if self._answer is not None:
            return self._answer
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._client.auth_test(), name="auth.test")
        answer = await asyncio.shield(self._asking)
        self._answer = answer
        return answer


def bolt_authorize(identity: BotIdentity) -> Callable[..., Awaitable[AuthorizeResult]]:
    """`identity` as Bolt's `authorize` (Bolt passes the arguments a plain function names)."""

    async def authorize(user_id: str | None) -> AuthorizeResult:
        return await identity.authorize(user_id)

    return authorize
