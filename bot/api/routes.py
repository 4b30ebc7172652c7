"""The route `POST /agent/run`: the checked request (API key, Idempotency-Key, typed body, prompt
length) becomes an `AgentRun`, bounded by the request timeout; any failure is answered as a plain
sentence, with the caller's new token pair if Taiga rotated it on the way."""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at runtime,
# and they name this factory's own `api_key` dependency.

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Security
from fastapi.responses import JSONResponse

from agent.identity import RequestTokens
from agent.runtime import Runtime
from agent.settings import Settings
from bot.api.dependencies import ApiKey, idempotency_key
from bot.api.errors import ApiError, error_response
from bot.api.idempotency import idempotency_for
from bot.api.models import AgentRunRequest, AgentRunResponse, error_responses
from bot.api.run import AgentRun, refreshed_tokens
from taiga.models import TaigaTokens


def agent_run_router(
    settings: Settings, runtime: Callable[[], Runtime], request_timeout: float
) -> APIRouter:
    """`POST /agent/run` for callers holding one of `settings.agent_api_keys`, served with the
    clients `runtime()` returns; one request takes at most `request_timeout` seconds."""
    # A body without a Content-Type is read as JSON, as it always was; the Bearer key already
    # rules out the cross-site requests that strict checking guards against.
    router = APIRouter(strict_content_type=False)
    api_key = ApiKey(settings.agent_api_keys)

    @router.post(
        "/agent/run",
        response_model=AgentRunResponse,
        responses=error_responses(401, 403, 404, 409, 413, 422, 502, 503, 504),
    )
    async def agent_run(
        caller_key: Annotated[str, Security(api_key)],
        idempotency: Annotated[str | None, Depends(idempotency_key)],
        body: AgentRunRequest,
    ) -> AgentRunResponse | JSONResponse:
        if len(body.prompt) > settings.max_minutes_chars:
            raise ApiError(
                413,
                f"The prompt is {len(body.prompt):,} characters; the limit is "
                f"{settings.max_minutes_chars:,} (MAX_MINUTES_CHARS).",
            )
        clients = runtime()
        run = AgentRun(
            runtime=clients,
            body=body,
            tokens=RequestTokens(
                clients.taiga, TaigaTokens(auth_token=body.auth_token, refresh=body.refresh)
            ),
            seconds=request_timeout,
            idempotency=(
                idempotency_for(idempotency, caller_key, body) if idempotency is not None else None
            ),
        )
        try:
            async with asyncio.timeout(request_timeout):
                return await run.answer()
        except TimeoutError:
            error = ApiError(
                504,
                f"The request did not finish within {request_timeout:g} seconds; "
                "anything already created in Taiga stays there.",
            )
        except ApiError as exc:
            error = exc
        return error_response(error, refreshed_tokens(run.tokens))

    return router
