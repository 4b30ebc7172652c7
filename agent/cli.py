"""`python -m agent plan --project SLUG_OR_ID --sprint "Sprint 6" minutes.txt` (or `-` for stdin).

Prints the proposal as a readable tree (or JSON with `--json`), then asks `Apply? [y/N]` and, on
yes, applies it exactly once (a plan row and the write ledger in DATABASE_URL) and prints what was
created with links. `--yes` applies without asking, but not a plan whose planning stopped early
unless `--allow-partial` is given; `--dry-run` never applies. If some writes
fail, `python -m agent apply PLAN_ID` creates only what is missing; `python -m agent undo PLAN_ID`
deletes what the plan created (within PLAN_UNDO_MINUTES), keeping what people changed since.
`python -m agent mcp [--http --port N]` serves the same planner to MCP clients (agent/mcp/).
Taiga credentials: TAIGA_AUTH_TOKEN, or TAIGA_USERNAME + TAIGA_PASSWORD (read here, as argparse
defaults, and nowhere else); everything else comes from `Settings`.

Exit codes: 0 a complete proposal (and, if applied, everything created), 1 planning stopped early
(the proposal says why) or some writes failed, 2 an error (one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from anthropic import AsyncAnthropic
from pydantic import SecretStr, ValidationError

from agent.errors import PlanIncomplete, PlanningError, PlanNotAllowed, explain_failure
from agent.executor import ExecutionResult, PlanNotApproved, PlanNotFound, apply_plan
from agent.executor.lease import LeaseTiming
from agent.mcp.main import add_arguments as add_mcp_arguments
from agent.mcp.main import run as serve_mcp
from agent.planning.context import read_project
from agent.progress import Progress, Step
from agent.proposal import Proposal, ProposedStory, ProposedTask
from agent.service import approve_and_apply, propose_plan, undo_applied_plan
from agent.settings import MissingSettingError, Settings, invalid_setting_line
from agent.undo import UndoRefused, UndoReport
from agent.undo.report import report_lines
from storage.db import Database
from taiga.client import Clock, SystemClock, TaigaClient, TaigaSession
from taiga.errors import BadCredentials, TaigaError
from taiga.models import Project, TaigaTokens


class CliError(Exception):
    """A plain one-line problem for the person at the terminal (exit code 2)."""


def build_parser(env: dict[str, str] | None = None) -> argparse.ArgumentParser:
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(prog="python -m agent", description="Taiga Planner agent")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="propose a sprint plan from meeting minutes")
    plan.add_argument("minutes", help="file with the meeting minutes, or - for stdin")
    plan.add_argument("--project", required=True, help="Taiga project slug or numeric id")
    plan.add_argument("--sprint", required=True, help='target sprint name, e.g. "Sprint 6"')
    plan.add_argument("--json", action="store_true", help="print the proposal as JSON")
    plan.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    plan.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    plan.add_argument("--dry-run", action="store_true", help="never apply; only print the plan")
    plan.add_argument(
        "--allow-partial",
        action="store_true",
        help="with --yes: apply a plan even if planning stopped early (it may be incomplete)",
    )
    resume = commands.add_parser("apply", help="apply what is missing of an applied plan")
    resume.add_argument("plan_id", help="the plan id printed by `plan`")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    undo = commands.add_parser("undo", help="delete what an applied plan created in Taiga")
    undo.add_argument("plan_id", help="the plan id printed by `plan`")
    undo.add_argument("--json", action="store_true", help="print the report as JSON")
    mcp = commands.add_parser("mcp", help="serve the planner to MCP clients (stdio or HTTP)")
    add_mcp_arguments(mcp)
    for command in (plan, resume, undo, mcp):
        command.add_argument(
            "--taiga-username",
            default=env.get("TAIGA_USERNAME", ""),
            help="Taiga user to sign in as (default: TAIGA_USERNAME; the password comes only"
            " from TAIGA_PASSWORD, or use TAIGA_AUTH_TOKEN)",
        )
        command.add_argument(
            "--taiga-password", default=env.get("TAIGA_PASSWORD", ""), help=argparse.SUPPRESS
        )
        command.add_argument(
            "--taiga-auth-token", default=env.get("TAIGA_AUTH_TOKEN", ""), help=argparse.SUPPRESS
        )
        command.add_argument(
            "--taiga-refresh-token",
            default=env.get("TAIGA_REFRESH_TOKEN", ""),
            help=argparse.SUPPRESS,
        )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    clock: Clock | None = None,
    stdin: TextIO | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    stdin = stdin or sys.stdin
    try:
        settings = Settings()
        if args.command == "mcp":
            return serve_mcp(args, settings)
        if args.command == "apply":
            result = asyncio.run(resume(args, settings, clock=clock or SystemClock()))
            return 0 if result.complete else 1
        if args.command == "undo":
            report = asyncio.run(undo(args, settings, clock=clock or SystemClock()))
            return 0 if report.state == "undone" else 1
        settings.require("anthropic_api_key")
        if args.command == "plan":
            minutes = read_minutes(args.minutes, stdin, limit=settings.max_minutes_chars)
            step = ApplyStep(args, settings, stdin, minutes=minutes)
            proposal = asyncio.run(
                plan(args, settings, minutes=minutes, clock=clock or SystemClock(), then=step)
            )
            if step.result is not None:
                return 0 if step.result.complete and proposal.stopped is None else 1
            return 1 if proposal.stopped is not None else 0
    except (
        CliError, MissingSettingError, PlanningError, PlanNotFound, PlanNotApproved, UndoRefused
    ) as exc:
        return _fail(str(exc))
    except ValidationError as exc:  # a malformed setting
        return _fail(invalid_setting_line(exc))
    except (TaigaError, PlanNotAllowed) as exc:
        return _fail(explain_failure(exc).api_detail)
    except PlanIncomplete as exc:
        return _fail(f"{exc} Pass --allow-partial to apply it anyway.")
    except KeyboardInterrupt:
        return _fail("Interrupted.", code=130)
    return 2  # pragma: no cover - argparse requires a command


def _fail(message: str, *, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def read_minutes(path: str, stdin: TextIO, *, limit: int) -> str:
    try:
        if path == "-":
            text = stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read the minutes from {path}: {exc}") from None
    if not text.strip():
        raise CliError("The minutes are empty.")
    if len(text) > limit:
        raise CliError(f"The minutes are {len(text)} characters; the limit is {limit}.")
    return text


def _tokens(args: argparse.Namespace) -> TaigaTokens | None:
    if args.taiga_auth_token:
        return TaigaTokens(auth_token=SecretStr(args.taiga_auth_token))
    if not (args.taiga_username and args.taiga_password):
        raise CliError("Set TAIGA_AUTH_TOKEN, or TAIGA_USERNAME and TAIGA_PASSWORD.")
    return None


AfterPlan = Callable[[Proposal, Project, TaigaSession], Awaitable[None]]


async def plan(
    args: argparse.Namespace,
    settings: Settings,
    *,
    minutes: str,
    clock: Clock,
    then: AfterPlan | None = None,
) -> Proposal:
    """Sign in to Taiga, read the project, propose and return the proposal (nothing is written
    here). `then(proposal, project, session)` runs while the Taiga session is still open (show,
    ask, apply)."""
    tokens = _tokens(args)

    async with TaigaClient(settings.taiga_api_url, clock=clock) as taiga:
        tokens = tokens or await _login(taiga, args)
        session = taiga.session(tokens, deadline=clock.now() + settings.agent_deadline_seconds)
        anthropic = AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            max_retries=0,
        )
        try:
            project = await read_project(session, args.project)
            proposal = await propose_plan(
                session,
                project,
                sprint_name=args.sprint,
                minutes=minutes,
                settings=settings,
                anthropic=anthropic,
                clock=clock,
                progress=_progress(args),
            )
        finally:
            await anthropic.close()
        if then is not None:
            await then(proposal, project, session)
        return proposal


def _progress(args: argparse.Namespace) -> Progress:
    async def progress(step: Step) -> None:
        if not args.quiet:
            print(f"{step.title}…", file=sys.stderr)

    return progress


async def _login(taiga: TaigaClient, args: argparse.Namespace) -> TaigaTokens:
    try:
        return (await taiga.login(args.taiga_username, args.taiga_password)).tokens
    except BadCredentials:
        raise CliError("Taiga did not accept that username and password.") from None


# --------------------------------------------------------------------------- apply


def _database(settings: Settings) -> Database:
    database = Database(settings.database_url.get_secret_value())
    database.migrate()
    return database


class ApplyStep:
    """After planning: print the proposal, ask `Apply? [y/N]` (unless --yes / --dry-run), apply."""

    def __init__(
        self, args: argparse.Namespace, settings: Settings, stdin: TextIO, *, minutes: str
    ) -> None:
        self.args = args
        self.settings = settings
        self.stdin = stdin
        self.minutes = minutes
        self.result: ExecutionResult | None = None

    async def __call__(self, proposal: Proposal, project: Project, session: TaigaSession) -> None:
        print(dump_json(proposal) if self.args.json else format_proposal(proposal), flush=True)
        if self.args.dry_run or not proposal.actions():
            return
        # A person who read the proposal (its warnings say why it stopped) and said yes
        # accepts it as it is.
        allow_partial = self.args.allow_partial
        if not self.args.yes:
            if self.args.minutes == "-":  # stdin held the minutes: nobody left to answer
                self._note("Not applied: the minutes came from stdin; pass --yes to apply.")
                return
            if not await self._confirmed():
                self._note("Nothing was written to Taiga.")
                return
            allow_partial = True
        database = _database(self.settings)
        try:
            self.result = await approve_and_apply(
                database,
                proposal,
                permissions=project.my_permissions,
                minutes=self.minutes,
                decided_by="cli",
                taiga=session,
                web_url=self.settings.taiga_web_url,
                progress=_progress(self.args),
                allow_partial=allow_partial,
                concurrency=self.settings.taiga_write_concurrency,
                lease=LeaseTiming.from_settings(self.settings),
            )
        finally:
            database.dispose()
        _print_result(self.result, self.args.json)

    def _note(self, text: str) -> None:
        if not self.args.quiet:
            print(text, file=sys.stderr)

    async def _confirmed(self) -> bool:
        print("Apply? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = await asyncio.to_thread(self.stdin.readline)
        except (OSError, EOFError):  # no usable stdin (e.g. the minutes came from it)
            answer = ""
        if not answer.endswith("\n"):
            print(file=sys.stderr)
        return answer.strip().lower() in ("y", "yes")


async def resume(args: argparse.Namespace, settings: Settings, *, clock: Clock) -> ExecutionResult:
    """`apply PLAN_ID`: finish a plan that was partly applied (only what is missing)."""
    tokens = _tokens(args)
    database = _database(settings)
    try:
        async with TaigaClient(settings.taiga_api_url, clock=clock) as taiga:
            session = taiga.session(tokens or await _login(taiga, args))
            result = await apply_plan(
                db=database,
                plan_id=args.plan_id,
                taiga=session,
                web_url=settings.taiga_web_url,
                progress=_progress(args),
                concurrency=settings.taiga_write_concurrency,
                lease=LeaseTiming.from_settings(settings),
            )
    finally:
        database.dispose()
    _print_result(result, args.json)
    return result


async def undo(args: argparse.Namespace, settings: Settings, *, clock: Clock) -> UndoReport:
    """`undo PLAN_ID`: delete what the plan created, keeping what people changed since."""
    tokens = _tokens(args)
    database = _database(settings)
    try:
        async with TaigaClient(settings.taiga_api_url, clock=clock) as taiga:
            session = taiga.session(tokens or await _login(taiga, args))
            report = await undo_applied_plan(
                database, args.plan_id, taiga=session, settings=settings
            )
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report_lines(report)))
        if report.failed:
            print(f"Run `python -m agent undo {report.plan_id}` again to remove the rest.")
    return report


def _print_result(result: ExecutionResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print(format_result(result))


def format_result(result: ExecutionResult) -> str:
    """What the plan created in Taiga, with links, and what is still missing."""
    lines = ["Created in Taiga:" if result.created else "Nothing was created in Taiga."]
    if result.milestone_url and not result.created_of("milestone"):
        lines.append(f"  Sprint: {result.milestone_name} (existing)  {result.milestone_url}")
    tasks_by_story: dict[str, list[str]] = {}
    for item in result.created_of("task"):
        parent = item.story_key or f"existing:{item.user_story_id}"
        tasks_by_story.setdefault(parent, []).append(
            f"     - #{item.ref} {item.subject}  {item.url}"
        )
    for item in result.created:
        if item.kind == "milestone":
            lines.append(f"  Sprint: {item.subject} (new)  {item.url}")
        elif item.kind in ("story", "move"):
            moved = " (moved into the sprint)" if item.kind == "move" else ""
            lines.append(f"  #{item.ref} {item.subject}{moved}  {item.url}")
            lines.extend(tasks_by_story.pop(item.action_key, []))
    for parent, task_lines in tasks_by_story.items():
        if parent.startswith("existing:"):
            lines.append(f"  Tasks under existing story id {parent.split(':', 1)[1]}:")
        else:
            lines.append("  Tasks:")
        lines.extend(task_lines)
    if result.failed:
        lines.append(f"Not created ({len(result.failed)}):")
        for failed in result.failed:
            lines.append(f"  {failed.kind} {failed.subject!r}: {failed.reason}")
        lines.append(f"Run `python -m agent apply {result.plan_id}` to create what is missing.")
    if result.created:
        lines.append(f"Run `python -m agent undo {result.plan_id}` to delete what it created.")
    return "\n".join(lines)


def format_proposal(proposal: Proposal) -> str:
    """The proposal as a readable tree for a terminal."""
    p = proposal.project
    lines = [f"Plan for {p.name} ({p.slug}), sprint {proposal.target_sprint!r}"]
    m = proposal.milestone
    if m is None:
        lines.append("Sprint: does not exist and cannot be created; nothing can be placed.")
    else:
        dates = (
            f"{m.estimated_start} → {m.estimated_finish}"
            if m.estimated_start and m.estimated_finish
            else "dates unknown"
        )
        state = "NEW, will be created" if m.to_create else "existing"
        lines.append(f"Sprint: {m.name} ({state}, {dates})")
    if proposal.stories:
        lines.append(f"User stories ({len(proposal.stories)}):")
        for n, story in enumerate(proposal.stories, start=1):
            tags = f"  [{', '.join(story.tags)}]" if story.tags else ""
            dup = story.duplicate_of
            left = f"  (left out: likely a duplicate of #{dup.ref} {dup.subject})" if dup else ""
            lines.append(f"  {n}. {story.subject}{tags}{_owner_and_due(story)}{left}")
            for task in story.tasks:
                lines.append(f"     - {task.subject}{_owner_and_due(task)}")
    if proposal.tasks_for_existing:
        lines.append(f"Tasks under existing stories ({len(proposal.tasks_for_existing)}):")
        for task in proposal.tasks_for_existing:
            parent = (
                f"#{task.user_story_ref}" if task.user_story_ref else f"id {task.user_story_id}"
            )
            title = f" {task.user_story_subject}" if task.user_story_subject else ""
            lines.append(f"  - {parent}{title}: {task.subject}{_owner_and_due(task)}")
    if proposal.moves:
        lines.append(f"Existing stories moved into the sprint ({len(proposal.moves)}):")
        for move in proposal.moves:
            lines.append(f"  - #{move.ref} {move.subject} (from {move.from_sprint or 'backlog'})")
    if not proposal.actions():
        lines.append("Nothing to create.")
    lines += [f"? {question}" for question in proposal.questions]
    for warning in proposal.warnings:
        lines.append(f"! {warning}")
    lines.append(f"Summary: {proposal.summary}")
    u = proposal.usage
    lines.append(
        f"({u.model_calls} model {'call' if u.model_calls == 1 else 'calls'}, "
        f"{u.tool_calls} tool calls, {u.input_tokens} input / {u.output_tokens} output tokens, "
        f"{u.cache_read_tokens} read from cache)"
    )
    return "\n".join(lines)


def _owner_and_due(item: ProposedStory | ProposedTask) -> str:
    """"  → Dana Scott, due 2026-12-11", the part of it the item has, or ""."""
    parts = [f"→ {item.assignee}"] if item.assignee else []
    parts += [f"due {item.due_date}"] if item.due_date else []
    return "  " + ", ".join(parts) if parts else ""


def dump_json(proposal: Proposal) -> str:
    return json.dumps(proposal.model_dump(mode="json"), indent=2, ensure_ascii=False)
