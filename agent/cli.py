"""`python -m agent plan --project SLUG_OR_ID --sprint "Sprint 6" minutes.txt` (or `-` for stdin).

Prints the proposal as a readable tree (or JSON with `--json`); writes nothing to Taiga.
Taiga credentials: TAIGA_AUTH_TOKEN, or TAIGA_USERNAME + TAIGA_PASSWORD (read here, as argparse
defaults, and nowhere else); everything else comes from `Settings`.

Exit codes: 0 a complete proposal, 1 planning stopped early (the proposal says why), 2 an error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from anthropic import AsyncAnthropic
from pydantic import SecretStr, ValidationError

from agent.budgets import Budgets
from agent.loop import PlanningError, propose
from agent.proposal import Proposal
from agent.settings import MissingSettingError, Settings
from taiga.client import Clock, SystemClock, TaigaClient
from taiga.errors import BadCredentials, TaigaError
from taiga.models import TaigaTokens


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
    plan.add_argument("--taiga-username", default=env.get("TAIGA_USERNAME", ""))
    plan.add_argument(
        "--taiga-password", default=env.get("TAIGA_PASSWORD", ""), help=argparse.SUPPRESS
    )
    plan.add_argument(
        "--taiga-auth-token", default=env.get("TAIGA_AUTH_TOKEN", ""), help=argparse.SUPPRESS
    )
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        settings.require("anthropic_api_key")
        if args.command == "plan":
            minutes = read_minutes(args.minutes, sys.stdin, limit=settings.max_minutes_chars)
            proposal = asyncio.run(
                plan(args, settings, minutes=minutes, clock=clock or SystemClock())
            )
            print(dump_json(proposal) if args.json else format_proposal(proposal))
            return 1 if proposal.stopped is not None else 0
    except (CliError, MissingSettingError, PlanningError) as exc:
        return _fail(str(exc))
    except ValidationError as exc:  # a malformed setting
        first = exc.errors()[0]
        return _fail(f"Invalid setting {'.'.join(map(str, first['loc'])).upper()}: {first['msg']}")
    except TaigaError as exc:
        return _fail(f"Taiga: {exc.message or type(exc).__name__}")
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


async def plan(
    args: argparse.Namespace, settings: Settings, *, minutes: str, clock: Clock
) -> Proposal:
    """Sign in to Taiga, run `propose` and return the proposal (nothing is written)."""
    tokens = _tokens(args)
    budgets = Budgets.from_settings(settings)

    async def progress(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr)

    async with TaigaClient(settings.taiga_api_url, clock=clock) as taiga:
        if tokens is None:
            try:
                tokens = (await taiga.login(args.taiga_username, args.taiga_password)).tokens
            except BadCredentials:
                raise CliError("Taiga did not accept that username and password.") from None
        session = taiga.session(tokens, deadline=clock.now() + budgets.deadline_seconds)
        anthropic = AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            max_retries=0,
        )
        try:
            return await propose(
                anthropic=anthropic,
                model=settings.anthropic_model,
                taiga=session,
                project_ref=args.project,
                sprint_name=args.sprint,
                minutes=minutes,
                budgets=budgets,
                clock=clock,
                progress=progress,
            )
        finally:
            await anthropic.close()


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
            lines.append(f"  {n}. {story.subject}{tags}")
            for task in story.tasks:
                lines.append(f"     - {task.subject}")
    if proposal.tasks_for_existing:
        lines.append(f"Tasks under existing stories ({len(proposal.tasks_for_existing)}):")
        for task in proposal.tasks_for_existing:
            parent = (
                f"#{task.user_story_ref}" if task.user_story_ref else f"id {task.user_story_id}"
            )
            title = f" {task.user_story_subject}" if task.user_story_subject else ""
            lines.append(f"  - {parent}{title}: {task.subject}")
    if not proposal.actions():
        lines.append("Nothing to create.")
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


def dump_json(proposal: Proposal) -> str:
    return json.dumps(proposal.model_dump(mode="json"), indent=2, ensure_ascii=False)
