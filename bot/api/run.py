"""One `POST /agent/run`: plan, then apply through `agent.service` (calling the API counts as
approval; `dry_run` only proposes), or, for a retry whose Idempotency-Key holds a stored plan,
finish that plan without planning again (the executor creates only what is missing, or returns
the stored result)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anthropic

from agent.errors import PlanIncomplete, PlanningError, PlanNotAllowed
from agent.executor import ExecutionResult, apply_plan
from agent.executor.lease import LeaseTiming
from agent.identity import RequestTokens
from agent.planning.context import read_project
from agent.proposal import Proposal
from agent.runtime import Runtime
from agent.service import Idempotency, approve_and_apply, propose_plan, require_finished
from agent.tools import STORY_AND_TASK_PERMISSIONS
from bot.api.errors import ApiError
from bot.api.idempotency import KEY_IN_USE, stored_plan
from bot.api.models import (
    AgentRunRequest,
    AgentRunResponse,
    PartialPlanRefused,
    RefreshedTokens,
)
from bot.api.responses import applied_response, proposal_response
from bot.api.target import minutes_with_story_hint, target_sprint
from storage import repositories as repo
from taiga.client import TaigaSession
from taiga.errors import TaigaError


@dataclass(frozen=True)
class AgentRun:
    """A checked request, with the caller's tokens and `seconds` for each Taiga session."""

    runtime: Runtime
    body: AgentRunRequest
    tokens: RequestTokens
    seconds: float
    idempotency: Idempotency | None

    async def answer(self) -> AgentRunResponse:
        if self.idempotency is not None:
            key = self.idempotency
            stored = await self.runtime.db.run(lambda s: stored_plan(s, key))
            if stored is not None:
                plan_id, proposal = stored
                result = await apply_plan(
                    db=self.runtime.db,
                    plan_id=plan_id,
                    taiga=self._session(),
                    web_url=self.runtime.settings.taiga_web_url,
                    concurrency=self.runtime.settings.taiga_write_concurrency,
                )
                return self._applied(proposal, result)
        return await self._plan_and_apply()

    async def _plan_and_apply(self) -> AgentRunResponse:
        session = self._session()
        # Who applies is read alongside the project, not after planning: one round trip less.
        actor = None if self.body.dry_run else asyncio.create_task(actor_id(session))
        try:
            return await self._plan_then_apply(session, actor)
        finally:
            if actor is not None:
                actor.cancel()

    async def _plan_then_apply(
        self, session: TaigaSession, actor: asyncio.Task[int | None] | None
    ) -> AgentRunResponse:
        body, settings = self.body, self.runtime.settings
        try:
            project = await read_project(session, body.project_id)
            sprint_name = await target_sprint(session, project, body)
            minutes = await minutes_with_story_hint(session, project, body, sprint_name)
            proposal = await propose_plan(
                session,
                project,
                sprint_name=sprint_name,
                minutes=minutes,
                settings=settings,
                anthropic=self.runtime.anthropic,
                clock=self.runtime.clock,
            )
        except (TaigaError, PlanningError, anthropic.APIError) as exc:
            raise ApiError.explaining(exc) from None
        if not body.dry_run:
            try:
                require_finished(proposal, allow_partial=body.allow_partial)
            except PlanIncomplete as exc:
                raise self._refused(exc) from None
        if body.dry_run or proposal.is_empty:
            warnings = self._warnings(proposal)
            missing = [p for p in STORY_AND_TASK_PERMISSIONS if p not in project.my_permissions]
            if missing and proposal.is_empty:
                warnings.append(
                    "Your role in this Taiga project cannot create user stories or tasks "
                    f"(missing: {', '.join(missing)}), so nothing was written."
                )
            refreshed = refreshed_tokens(self.tokens)
            return proposal_response(proposal, warnings, refreshed, body.dry_run, settings)
        try:
            result = await approve_and_apply(
                self.runtime.db,
                proposal,
                permissions=project.my_permissions,
                minutes=body.prompt,
                decided_by="http-api",
                taiga=self._session(),
                web_url=settings.taiga_web_url,
                idempotency=self.idempotency,
                allow_partial=body.allow_partial,
                concurrency=settings.taiga_write_concurrency,
                lease=LeaseTiming.from_settings(settings),
                actor_id=await actor if actor is not None else None,
            )
        except PlanNotAllowed as exc:
            raise ApiError.explaining(exc) from None
        except repo.IdempotencyKeyTaken:  # a concurrent request with the same key stored first
            raise ApiError(409, KEY_IN_USE) from None
        return self._applied(proposal, result)

    def _applied(self, proposal: Proposal, result: ExecutionResult) -> AgentRunResponse:
        if result.state == "executing":  # another request is applying this plan right now
            raise ApiError(409, KEY_IN_USE)
        return applied_response(
            proposal,
            result,
            self._warnings(proposal),
            refreshed_tokens(self.tokens),
            self.runtime.settings,
        )

    def _refused(self, refusal: PlanIncomplete) -> ApiError:
        """A plan that stopped early: why (409, or 504 for the deadline), with what was
        proposed, so the caller can decide to send `allow_partial`."""
        proposal = refusal.proposal
        explained = ApiError.explaining(refusal)
        detail = (
            f"{explained.detail} Send \"allow_partial\": true to apply what was proposed anyway."
        )
        proposed = proposal_response(
            proposal, self._warnings(proposal), None, False, self.runtime.settings
        ).model_copy(update={"complete": False})
        body = PartialPlanRefused(
            detail=detail, stopped=str(proposal.stopped), proposal=proposed
        )
        return ApiError(explained.status_code, detail, extra=body.model_dump(exclude={"detail"}))

    def _warnings(self, proposal: Proposal) -> list[str]:
        """The request's own warnings, then the proposal's (including why planning stopped
        early, if it did)."""
        context = self.body.user_context
        ignored = (
            ["user_context.roles was ignored: what you may do comes from your role in Taiga."]
            if context is not None and context.roles
            else []
        )
        return ignored + proposal.warnings

    def _session(self) -> TaigaSession:
        return self.tokens.session(deadline=self.runtime.clock.now() + self.seconds)


async def actor_id(session: TaigaSession) -> int | None:
    """The session's Taiga user id, or None if Taiga would not say (the executor asks again)."""
    try:
        return (await session.me()).id
    except TaigaError:
        return None


def refreshed_tokens(tokens: RequestTokens) -> RefreshedTokens | None:
    """The caller's new token pair if Taiga rotated it during the request, else None."""
    if not tokens.refreshed:
        return None
    current = tokens.current
    return RefreshedTokens(
        auth_token=current.auth_token.get_secret_value(),
        refresh=current.refresh.get_secret_value() if current.refresh else None,
    )
