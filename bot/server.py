"""The HTTP host: `GET /health` (`bot.health`), the Slack mount `/slack/events`, and the HTTP
API (`bot.api`).

`uvicorn bot.server:api` serves `api`, built by `create_api()` from `Settings`, and
`python -m bot` serves the same app: its lifespan (`bot.lifespan`) is the one start-up path,
checking the settings, migrating the database, checking Slack's token and connecting Socket
Mode when SLACK_APP_TOKEN is set; a failure stops start-up with one line. Importing this module
connects nothing, and a malformed setting becomes that one line at start-up, not an import error.

`POST /agent/run` (see `bot.api`) is served only when `AGENT_API_KEYS` is set; without keys it
does not exist (404). `/docs`, `/redoc` and `/openapi.json` exist only with `API_DOCS=true`.
"""

from __future__ import annotations

from fastapi import FastAPI

from agent.runtime import Runtime
from agent.settings import Settings
from bot.api.errors import install_error_handlers
from bot.api.routes import agent_run_router
from bot.app import SlackBot, mount_slack_events
from bot.asgi_startup import StartupLine
from bot.connect.routes import mount_connect_page
from bot.health import health_router
from bot.lifespan import HostState, failing_lifespan, host_lifespan
from bot.startup import StartupError, read_settings, serves_slack

# Time for applying the plan on top of the planning deadline (AGENT_DEADLINE_SECONDS).
APPLY_SECONDS = 60.0
TITLE = "Taiga Planner"
SUMMARY = "Turn meeting minutes into a Taiga sprint plan."


def create_api(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    slack: SlackBot | None = None,
    request_timeout: float | None = None,
) -> FastAPI:
    """The FastAPI app: `/health`, `/agent/run`, and (in HTTP mode) `/slack/events`.

    Pass `runtime` / `slack` to inject what the caller built and checked (the caller then
    closes them); otherwise they are built from `settings` and checked at start-up, and closed
    at shutdown. `request_timeout` bounds one `/agent/run` (default: AGENT_DEADLINE_SECONDS +
    60 s to apply).
    """
    if settings is None and runtime is not None:
        settings = runtime.settings
    if settings is None:
        try:
            settings = read_settings()
        except StartupError as error:
            return _failing_api(str(error))
    state = HostState(
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
    docs = settings.api_docs
    app = FastAPI(
        title=TITLE,
        summary=SUMMARY,
        lifespan=host_lifespan(state),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_middleware(StartupLine)
    app.state.planner = state
    install_error_handlers(app)
    if serves_slack(settings) and not settings.socket_mode:
        mount_slack_events(app, state.get_bot)
    app.include_router(health_router(state))
    mount_connect_page(app, settings, lambda: state.get_bot().services)
    if settings.agent_api_keys:
        app.include_router(agent_run_router(settings, state.get_runtime, state.request_timeout))
    return app


def _failing_api(line: str) -> FastAPI:
    app = FastAPI(title=TITLE, lifespan=failing_lifespan(line), openapi_url=None, docs_url=None)
    app.add_middleware(StartupLine)
    return app


api = create_api()
