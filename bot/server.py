"""The HTTP host: `GET /health` and `POST /agent/run` (FastAPI).

`uvicorn bot.server:api` serves `api`, built by `create_api()` from `Settings`. Nothing remote is
called at start-up: the shared clients are built on first use (or injected by tests through
`create_api(settings, runtime=...)`) and closed at shutdown.

`POST /agent/run` is the original service's API: one call proposes a plan from the minutes and,
because calling it counts as approval, applies it through the same executor the Slack flow uses
(a stored plan and the write ledger, so each write happens exactly once). `dry_run` only proposes.
It is off (404) unless `AGENT_API_KEYS` is set; then a `Bearer` key is required.

An optional `Idempotency-Key` header makes a retry safe: the plan is stored under the key (hashed,
scoped by the caller's API key), and the same key again finishes that plan instead of planning
anew; see `_idempotency`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anthropic as anthropic_sdk
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.budgets import Budgets, StopReason
from agent.errors import PlanningError, explain_failure
from agent.executor import ExecutionResult, apply_plan, record_approved_plan
from agent.identity import RequestTokens
from agent.loop import propose
from agent.proposal import Proposal
from agent.runtime import Runtime, build_runtime
from agent.settings import Settings
from agent.tools import STORY_AND_TASK_PERMISSIONS, permissions_to_apply
from bot.api_models import (
    AgentRunRequest,
    AgentRunResponse,
    Artifacts,
    HealthResponse,
    RefreshedTokens,
    StoryArtifact,
    TaskArtifact,
    error_responses,
)
from bot.app import SlackBot, build_bot, mount_slack_events
from storage import repositories as repo
from taiga import links
from taiga.errors import (
    NotFound,
    TaigaError,
)
from taiga.models import Project, TaigaTokens
from taiga.names import milestone_named, normalise_name

log = logging.getLogger(__name__)

# Time for applying the plan on top of the planning deadline (AGENT_DEADLINE_SECONDS).
APPLY_SECONDS = 60.0
_SPRINT_NUMBER = re.compile(r"\bsprint[\s#:-]*(\d+)\b", re.IGNORECASE)
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
KEY_IN_USE = (
    "Another request with this Idempotency-Key is still being applied; "
    "send it again once that one has finished."
)


class ApiError(HTTPException):
    """An error answered as `{"detail": "<plain sentence>"}`."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key as stored (hashed with the API key) and its body's digest."""

    key: str
    request_digest: str


# --------------------------------------------------------------------------- app


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
    _install_error_handlers(app)
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

    @app.post(
        "/agent/run",
        response_model=AgentRunResponse,
        include_in_schema=bool(settings.agent_api_keys),
        responses=error_responses(401, 403, 404, 409, 413, 422, 502, 503, 504),
        openapi_extra={
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "Makes a retry safe: the same key (with the same body) "
                    "finishes the stored plan or returns its result instead of planning again.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": AgentRunRequest.model_json_schema()}},
            },
        },
    )
    async def agent_run(request: Request) -> AgentRunResponse | JSONResponse:
        api_key = _check_api_key(request, state.settings.agent_api_keys)
        body = await _parse_request(request)
        idempotency = _idempotency(request, api_key, body)
        if len(body.prompt) > state.settings.max_minutes_chars:
            raise ApiError(
                413,
                f"The prompt is {len(body.prompt):,} characters; the limit is "
                f"{state.settings.max_minutes_chars:,} (MAX_MINUTES_CHARS).",
            )
        runtime = state.get_runtime()
        tokens = RequestTokens(runtime.taiga, _taiga_tokens(body))
        try:
            async with asyncio.timeout(state.request_timeout):
                return await _run_once(runtime, body, tokens, state.request_timeout, idempotency)
        except TimeoutError:
            error = ApiError(
                504,
                f"The request did not finish within {state.request_timeout:g} seconds; "
                "anything already created in Taiga stays there.",
            )
        except ApiError as exc:
            error = exc
        return _error_response(error, _refreshed(tokens))

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_sentence(exc.errors())}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "The planner's database is unavailable; try again shortly."},
            status_code=503,
        )


# --------------------------------------------------------------------------- request checks


def _check_api_key(request: Request, keys: Sequence[SecretStr]) -> str:
    """The configured key the caller sent; 404 when the API is off, 401 without a valid key."""
    if not keys:
        raise ApiError(404, "Not Found")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    given_digest = hashlib.sha256(given.strip().encode()).digest()
    matched: str | None = None
    for key in keys:  # constant time: fixed-length digests, and every key is compared
        plain = key.get_secret_value()
        if hmac.compare_digest(given_digest, hashlib.sha256(plain.encode()).digest()):
            matched = plain
    if scheme.lower() != "bearer" or not given.strip() or matched is None:
        raise ApiError(
            401,
            "Send a valid API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return matched


def _idempotency(request: Request, api_key: str, body: AgentRunRequest) -> Idempotency | None:
    """The request's `Idempotency-Key`, hashed with the caller's API key (so callers with
    different keys never share a plan), and a digest of the request without its tokens."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(422, "The Idempotency-Key header must be 1 to 255 visible ASCII characters.")
    scope = hashlib.sha256(api_key.encode()).hexdigest()
    request_fields = body.model_dump(mode="json", exclude={"auth_token", "refresh"})
    return Idempotency(
        key=_sha256(f"{scope}:{key}"),
        request_digest=_sha256(json.dumps(request_fields, sort_keys=True)),
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _parse_request(request: Request) -> AgentRunRequest:
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise ApiError(422, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "The request body must be a JSON object.")
    try:
        return AgentRunRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, _validation_sentence(exc.errors())) from None


def _validation_sentence(errors: Sequence[Any]) -> str:
    """'Invalid request: prompt: Field required; project_id: ...' (never echoes the input)."""
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."


# --------------------------------------------------------------------------- the run


def _error_response(error: ApiError, tokens: RefreshedTokens | None) -> JSONResponse:
    """`{"detail": ...}`; plus the new token pair if Taiga rotated the caller's refresh token
    during this request (the old one no longer works, so it must not be lost with the error)."""
    content: dict[str, Any] = {"detail": error.detail}
    if tokens is not None:
        content["tokens"] = tokens.model_dump()
    return JSONResponse(content, status_code=error.status_code, headers=error.headers)


async def _run_once(
    runtime: Runtime,
    body: AgentRunRequest,
    tokens: RequestTokens,
    seconds: float,
    idempotency: Idempotency | None,
) -> AgentRunResponse:
    """`_run`; but if a plan is stored under the request's Idempotency-Key, finish that plan
    (apply_plan creates only what is missing, or returns the stored result) without planning."""
    if idempotency is not None:
        stored = await runtime.db.run(
            lambda s: _stored_plan(s, idempotency.key, idempotency.request_digest)
        )
        if stored is not None:
            plan_id, proposal = stored
            return await _apply(runtime, body, tokens, seconds, plan_id, proposal)
    return await _run(runtime, body, tokens, seconds, idempotency)


def _stored_plan(session: Session, key: str, request_digest: str) -> tuple[str, Proposal] | None:
    plan = repo.plan_for_idempotency_key(session, key=key)
    if plan is None or plan.proposal is None:
        return None
    if plan.request_digest != request_digest:
        raise ApiError(
            422,
            "This Idempotency-Key was already used for another request; "
            "send a new key with a changed request.",
        )
    return plan.id, Proposal.model_validate(plan.proposal)


async def _run(
    runtime: Runtime,
    body: AgentRunRequest,
    tokens: RequestTokens,
    seconds: float,
    idempotency: Idempotency | None,
) -> AgentRunResponse:
    settings = runtime.settings
    session = tokens.session(deadline=runtime.clock.now() + seconds)
    warnings = _request_warnings(body)
    try:
        project = await session.get_project(body.project_id)
        sprint_name = await _target_sprint(session, project, body)
        minutes = await _minutes_with_story_hint(session, project, body, sprint_name)
        proposal = await propose(
            anthropic=runtime.anthropic,
            model=settings.anthropic_model,
            taiga=session,
            project_ref=project,
            sprint_name=sprint_name,
            minutes=minutes,
            budgets=Budgets.from_settings(settings),
            clock=runtime.clock,
        )
    except (TaigaError, PlanningError, anthropic_sdk.APIError) as exc:
        raise _api_error(exc) from None
    if proposal.stopped == StopReason.DEADLINE:
        raise ApiError(
            504,
            f"Planning did not finish within {settings.agent_deadline_seconds:g} seconds "
            "(AGENT_DEADLINE_SECONDS); nothing was written to Taiga.",
        )
    warnings += proposal.warnings  # includes why planning stopped early, if it did
    missing = [p for p in STORY_AND_TASK_PERMISSIONS if p not in project.my_permissions]
    if missing and proposal.is_empty:
        warnings.append(
            "Your role in this Taiga project cannot create user stories or tasks "
            f"(missing: {', '.join(missing)}), so nothing was written."
        )
    refreshed = _refreshed(tokens)
    if body.dry_run or proposal.is_empty:
        return _proposal_response(proposal, warnings, refreshed, body.dry_run, settings)
    lacking = permissions_to_apply(proposal) - project.my_permissions
    if lacking:
        raise ApiError(
            403,
            "Your role in this Taiga project does not allow this plan "
            f"(missing: {', '.join(sorted(lacking))}); nothing was written.",
        )
    try:
        plan_id = await record_approved_plan(
            runtime.db,
            proposal,
            minutes=body.prompt,
            decided_by="http-api",
            idempotency_key=idempotency.key if idempotency else None,
            request_digest=idempotency.request_digest if idempotency else None,
        )
    except repo.IdempotencyKeyTaken:  # a concurrent request with the same key stored first
        raise ApiError(409, KEY_IN_USE) from None
    return await _apply(runtime, body, tokens, seconds, plan_id, proposal)


async def _apply(
    runtime: Runtime,
    body: AgentRunRequest,
    tokens: RequestTokens,
    seconds: float,
    plan_id: str,
    proposal: Proposal,
) -> AgentRunResponse:
    """Apply the stored plan (exactly once, through the write ledger) and answer with it."""
    settings = runtime.settings
    result = await apply_plan(
        db=runtime.db,
        plan_id=plan_id,
        taiga=tokens.session(deadline=runtime.clock.now() + seconds),
        web_url=settings.taiga_web_url,
    )
    if result.state == "executing":  # another request is applying this plan right now
        raise ApiError(409, KEY_IN_USE)
    warnings = _request_warnings(body) + proposal.warnings
    return _applied_response(proposal, result, warnings, _refreshed(tokens), settings, plan_id)


def _request_warnings(body: AgentRunRequest) -> list[str]:
    if body.user_context is not None and body.user_context.roles:
        return ["user_context.roles was ignored: what you may do comes from your role in Taiga."]
    return []


def _taiga_tokens(body: AgentRunRequest) -> TaigaTokens:
    return TaigaTokens(auth_token=body.auth_token, refresh=body.refresh)


def _refreshed(tokens: RequestTokens) -> RefreshedTokens | None:
    if not tokens.refreshed:
        return None
    current = tokens.current
    return RefreshedTokens(
        auth_token=current.auth_token.get_secret_value(),
        refresh=current.refresh.get_secret_value() if current.refresh else None,
    )


def _api_error(exc: Exception) -> ApiError:
    explained = explain_failure(exc)
    return ApiError(explained.http_status, explained.api_detail)


async def _target_sprint(session: Any, project: Project, body: AgentRunRequest) -> str:
    """milestone_id's name, else the sprint the prompt names, else a 422."""
    if body.milestone_id is not None:
        try:
            milestone = await session.get_milestone(body.milestone_id)
        except NotFound:
            raise ApiError(
                422, f"milestone_id {body.milestone_id} was not found in Taiga."
            ) from None
        if milestone.project != project.id:
            raise ApiError(
                422, f"milestone_id {body.milestone_id} is not a sprint of project {project.id}."
            )
        return str(milestone.name)
    name = sprint_from_prompt(body.prompt, [m.name for m in project.milestones])
    if name is None:
        raise ApiError(
            422,
            "Say which sprint to plan: send milestone_id, or name the sprint in the prompt "
            "(for example 'Create user stories and tasks for Sprint 6').",
        )
    return name


def sprint_from_prompt(prompt: str, milestone_names: Sequence[str]) -> str | None:
    """The sprint the prompt asks for: the last mention of an existing sprint's name or of
    'sprint N' (instructions usually follow the minutes). 'sprint 6' becomes the existing
    sprint's spelling if there is one, else 'Sprint 6'."""
    mentions: list[tuple[int, int, str]] = []  # (position, priority, name)
    for name in milestone_names:
        pattern = r"(?<!\w)" + r"\s*".join(re.escape(w) for w in name.split()) + r"(?!\w)"
        for match in re.finditer(pattern, prompt, re.IGNORECASE):
            mentions.append((match.start(), 1, name))
    by_norm = {normalise_name(n): n for n in milestone_names}
    for match in _SPRINT_NUMBER.finditer(prompt):
        named = f"Sprint {int(match.group(1))}"
        mentions.append((match.start(), 0, by_norm.get(normalise_name(named), named)))
    if not mentions:
        return None
    return max(mentions)[2]


async def _minutes_with_story_hint(
    session: Any, project: Project, body: AgentRunRequest, sprint_name: str
) -> str:
    """The prompt, plus which existing story it concerns (one of the target sprint's)."""
    if body.user_story_id is None:
        return body.prompt
    try:
        story = await session.get_user_story(body.user_story_id)
    except NotFound:
        raise ApiError(422, f"user_story_id {body.user_story_id} was not found in Taiga.") from None
    if story.project != project.id:
        raise ApiError(422, f"user_story_id {body.user_story_id} is not in project {project.id}.")
    sprint = milestone_named(project.milestones, sprint_name)
    if sprint is None or story.milestone != sprint.id:
        raise ApiError(
            422,
            f"user_story_id {body.user_story_id} is not in {sprint_name}; a plan adds tasks only "
            "to stories of the sprint it plans.",
        )
    return (
        f"{body.prompt}\n\n(The request concerns the existing user story #{story.ref} "
        f'"{story.subject}" (id {story.id}); add tasks to it where they belong.)'
    )


# --------------------------------------------------------------------------- responses


def _proposal_response(
    proposal: Proposal,
    warnings: list[str],
    tokens: RefreshedTokens | None,
    dry_run: bool,
    settings: Settings,
) -> AgentRunResponse:
    """Nothing written: the proposal with null ids (existing stories keep theirs)."""
    milestone = proposal.milestone
    stories = [
        StoryArtifact(
            id=None,
            subject=s.subject,
            tasks=[TaskArtifact(id=None, subject=t.subject) for t in s.tasks],
        )
        for s in proposal.stories
    ]
    stories += _existing_story_artifacts(proposal, settings, {})
    summary = proposal.summary or proposal.count_summary()
    if not dry_run:
        summary = f"{summary} Nothing was written to Taiga."
    return AgentRunResponse(
        summary=summary,
        artifacts=Artifacts(
            milestone_id=milestone.existing_id if milestone else None,
            milestone_name=milestone.name if milestone else None,
            user_stories=stories,
        ),
        warnings=warnings,
        usage=proposal.usage,
        tokens=tokens,
        dry_run=dry_run,
        complete=not dry_run,
    )


def _existing_story_artifacts(
    proposal: Proposal, settings: Settings, created: dict[str, TaskArtifact]
) -> list[StoryArtifact]:
    """Tasks added to stories that were already in Taiga, grouped under those stories."""
    grouped: dict[int, StoryArtifact] = {}
    for task in proposal.tasks_for_existing:
        if task.user_story_id is None:
            continue
        story = grouped.get(task.user_story_id)
        if story is None:
            ref = task.user_story_ref
            story = grouped[task.user_story_id] = StoryArtifact(
                id=task.user_story_id,
                subject=task.user_story_subject or "",
                ref=ref,
                url=links.story_url(settings.taiga_web_url, proposal.project.slug, ref)
                if ref is not None
                else None,
                existing=True,
            )
        story.tasks.append(
            created.get(f"task:{task.key}") or TaskArtifact(id=None, subject=task.subject)
        )
    return list(grouped.values())


def _applied_response(
    proposal: Proposal,
    result: ExecutionResult,
    warnings: list[str],
    tokens: RefreshedTokens | None,
    settings: Settings,
    plan_id: str,
) -> AgentRunResponse:
    done = {item.action_key: item for item in result.created}
    task_artifacts = {
        item.action_key: TaskArtifact(id=item.id, subject=item.subject, ref=item.ref, url=item.url)
        for item in result.created_of("task")
    }
    stories: list[StoryArtifact] = []
    for story in proposal.stories:
        item = done.get(f"story:{story.key}")
        stories.append(
            StoryArtifact(
                id=item.id if item else None,
                subject=story.subject,
                ref=item.ref if item else None,
                url=item.url if item else None,
                tasks=[
                    task_artifacts.get(f"task:{t.key}") or TaskArtifact(id=None, subject=t.subject)
                    for t in story.tasks
                ],
            )
        )
    stories += _existing_story_artifacts(proposal, settings, task_artifacts)
    for failed in result.failed:
        label = {"milestone": "sprint", "story": "user story", "task": "task"}[failed.kind]
        warnings.append(f'Not created: {label} "{failed.subject}" ({failed.reason}).')
    return AgentRunResponse(
        summary=_summary(result),
        artifacts=Artifacts(
            milestone_id=result.milestone_id,
            milestone_name=result.milestone_name,
            milestone_url=result.milestone_url,
            user_stories=stories,
        ),
        warnings=warnings,
        usage=proposal.usage,
        tokens=tokens,
        plan_id=plan_id,
        complete=result.complete,
    )


def _summary(result: ExecutionResult) -> str:
    n_stories = len(result.created_of("story"))
    n_tasks = len(result.created_of("task"))
    parts = []
    if result.created_of("milestone"):
        parts.append(f"sprint {result.milestone_name}")
    parts.append(f"{n_stories} user {'story' if n_stories == 1 else 'stories'}")
    parts.append(f"{n_tasks} {'task' if n_tasks == 1 else 'tasks'}")
    where = f" in {result.milestone_name}" if result.milestone_name else " in the backlog"
    text = "Created " + _join(parts) + where + "."
    if not result.complete:
        missing = len(result.failed)
        text += f" {missing} {'item was' if missing == 1 else 'items were'} not created."
    return text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


api = create_api()
