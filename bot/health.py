"""`GET /health`: the database's schema revision (ok only at head) and, in Socket Mode, the
websocket's state; 503 with the reason otherwise. Cheap: one small query, no Taiga or Anthropic
call, so a load balancer may poll it often."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from bot.api.models import HealthResponse, error_responses
from bot.lifespan import HostState
from bot.startup import serves_slack
from storage.db import DatabaseUnreachable, head_revision, known_revisions

MIGRATE = "run `.venv/bin/python -m bot migrate` (or restart, which migrates)"


def health_router(state: HostState) -> APIRouter:
    router = APIRouter()

    @router.get("/health", response_model=HealthResponse, responses=error_responses(503))
    async def health() -> JSONResponse:
        body = await check_health(state)
        return JSONResponse(body.model_dump(), status_code=200 if body.status == "ok" else 503)

    return router


async def check_health(state: HostState) -> HealthResponse:
    head = head_revision()
    slack = await _slack_state(state)
    try:
        revision = await state.get_runtime().db.schema_revision()
    except DatabaseUnreachable as error:
        return _degraded("unreachable", None, head, slack, f"the database is unreachable: {error}")
    if revision is None:
        return _degraded("not migrated", None, head, slack, f"the database is empty: {MIGRATE}")
    if revision != head:
        known = revision in known_revisions()
        return _degraded(
            "behind" if known else "ahead", revision, head, slack,
            f"the schema is at {revision}, this version needs {head}: "
            + (MIGRATE if known else "run the newer version of Taiga Planner"),
        )
    if slack == "socket disconnected":
        return _degraded("ok", revision, head, slack, "the Socket Mode websocket to Slack is down")
    return HealthResponse(
        status="ok", database="ok", schema_revision=revision, schema_head=head, slack=slack
    )


def _degraded(
    database: str, revision: str | None, head: str | None, slack: str, reason: str
) -> HealthResponse:
    return HealthResponse.model_validate({
        "status": "degraded", "database": database, "schema_revision": revision,
        "schema_head": head, "slack": slack, "reason": reason,
    })  # fmt: skip


async def _slack_state(state: HostState) -> str:
    if not serves_slack(state.settings):
        return "off"
    if not state.settings.socket_mode:
        return "http"
    connected = state.socket is not None and await state.socket.is_connected()
    return "socket connected" if connected else "socket disconnected"

