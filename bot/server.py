"""The HTTP host: `GET /health`, the Slack mount `/slack/events`, and the HTTP API (`bot.api`).

`uvicorn bot.server:api` serves `api`, built by `create_api()` from `Settings`. Nothing remote is
called at start-up: the shared clients are built on first use (or injected by tests through
`create_api(settings, runtime=...)`) and closed at shutdown.

`POST /agent/run` (see `bot.api`) is served only when `AGENT_API_KEYS` is set; without keys it
does not exist (404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from agent.runtime import Runtime, build_runtime
from agent.settings import Settings
from bot.api.errors import install_error_handlers
from bot.api.models import HealthResponse, error_responses
from bot.api.routes import agent_run_router
from bot.app import SlackBot, build_bot, mount_slack_events
from bot.connect.routes import mount_connect_page

# Time for applying the plan on top of the planning deadline (AGENT_DEADLINE_SECONDS).
APPLY_SECONDS = 60.0


@dataclass
class _State:
    settings: Settings
    runtime: Runtime | None
    slack: SlackBot | None
    owns_runtime: bool
    owns_slack: bool
    request_timeout: float

    def get_runtime(self) -> Runtime:
        if self.runtime is None:  # built on first use: importing the module connects nothing
            self.runtime = build_runtime(self.settings)
        return self.runtime

    def get_bot(self) -> SlackBot:
        if self.slack is None:
            self.slack = build_bot(self.get_runtime())
        return self.slack

    async def aclose(self) -> None:
        if self.owns_slack and self.slack is not None:
            await self.slack.aclose()
            self.slack = None
        if self.owns_runtime and self.runtime is not None:
            await self.runtime.aclose()
            self.runtime = None


def create_api(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    slack: SlackBot | None = None,
    request_timeout: float | None = None,
) -> FastAPI:
    """The FastAPI app: `/health`, `/agent/run`, and (unless in Socket Mode) `/slack/events`.

    Pass `runtime` / `slack` to inject what the caller built (the caller then closes them);
    otherwise they are built from `settings` on first use and closed at shutdown.
    `request_timeout` bounds one `/agent/run` (default: AGENT_DEADLINE_SECONDS + 60 s to apply).
    """
    if settings is None:
        settings = runtime.settings if runtime is not None else Settings()
    state = _State(
        settings=settings,
        runtime=runtime,
        slack=slack,
        owns_runtime=runtime is None,
        owns_slack=slack is None,
        request_timeout=(
            request_timeout
            if request_timeout is not None
            else settings.agent_deadline_seconds + APPLY_SECONDS
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if state.owns_slack and settings.slack_bot_token and not settings.socket_mode:
            state.get_bot().start()  # the recovery sweep (`uvicorn bot.server:api`, the Procfile)
        yield
        await state.aclose()

    app = FastAPI(
        title="Taiga Planner",
        summary="Turn meeting minutes into a Taiga sprint plan.",
        lifespan=lifespan,
    )
    app.state.planner = state
    install_error_handlers(app)
    if not settings.socket_mode:
        mount_slack_events(app, state.get_bot)

    @app.get("/health", response_model=HealthResponse, responses=error_responses(503))
    async def health() -> JSONResponse:
        ok = await state.get_runtime().db.ping()
        body = (
            HealthResponse(status="ok", database="ok")
            if ok
            else HealthResponse(status="degraded", database="unreachable")
        )
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    mount_connect_page(app, settings, lambda: state.get_bot().services)
    if settings.agent_api_keys:
        app.include_router(agent_run_router(settings, state.get_runtime, state.request_timeout))
    return app


api = create_api()
