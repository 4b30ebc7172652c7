"""The App Home tab: the Taiga link (and Connect / Disconnect), the projects of the user's
channels, and their most recent plans with Open plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, ConfirmObject, DividerBlock, SectionBlock
from slack_sdk.models.views import View

from bot.blocks.kit import SUBJECT_MAX, button, context, esc_line, header, link, section
from taiga.links import project_url

ACTION_CONNECT = "home_connect"
ACTION_DISCONNECT = "home_disconnect"
ACTION_OPEN_PLAN = "home_open_plan"  # a prefix: "home_open_plan:<plan id>"
RECENT_PLANS = 10

STATE_LABELS = {
    "drafting": ":hourglass_flowing_sand: Drafting",
    "proposed": ":eyes: Waiting for approval",
    "approved": ":gear: Being applied",
    "executing": ":gear: Being applied",
    "done": ":white_check_mark: Applied",
    "partial": ":warning: Partly applied",
    "failed": ":x: Failed",
    "rejected": ":no_entry_sign: Rejected",
    "expired": ":clock3: Expired",
    "undoing": ":leftwards_arrow_with_hook: Being undone",
    "undone": ":leftwards_arrow_with_hook: Undone",
    "undo_partial": ":warning: Partly undone",
}


@dataclass(frozen=True, slots=True)
class HomeAccount:
    """The user's Taiga link as the Home tab shows it (no full name on links made before it
    was kept)."""

    username: str
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class HomeProject:
    channel_id: str
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class HomePlan:
    plan_id: str
    sprint: str
    project_slug: str
    channel_id: str
    state: str
    created_at: datetime
    counts: str  # "2 stories, 3 tasks"
    thread_url: str | None = None
    sprint_url: str | None = None


@dataclass(frozen=True, slots=True)
class HomePage:
    account: HomeAccount | None
    projects: list[HomeProject] = field(default_factory=list)
    plans: list[HomePlan] = field(default_factory=list)


def home_view(page: HomePage, *, web_url: str) -> dict[str, Any]:
    blocks: list[Block] = [header("Taiga Planner"), _account(page.account), DividerBlock()]
    blocks += _projects(page.projects, web_url)
    blocks += [DividerBlock(), *_plans(page.plans)]
    return View(type="home", blocks=blocks).to_dict()


def _account(account: HomeAccount | None) -> SectionBlock:
    if account is None:
        return section(
            ":link: *Not connected to Taiga.* Connect your Taiga account to plan sprints "
            "from meeting minutes; the bot keeps only the tokens Taiga gives it, encrypted.",
            accessory=button("Connect Taiga", ACTION_CONNECT, "connect", style="primary"),
        )
    who = f"*{esc_line(account.full_name, SUBJECT_MAX)}* (`{esc_line(account.username, 100)}`)"
    if not account.full_name:
        who = f"*{esc_line(account.username, SUBJECT_MAX)}*"
    text = f":white_check_mark: Connected to Taiga as {who}."
    disconnect = button(
        "Disconnect", ACTION_DISCONNECT, "disconnect", style="danger",
        confirm=ConfirmObject(
            title="Disconnect Taiga?",
            text="The bot forgets your Taiga tokens. You can connect again at any time.",
            confirm="Disconnect",
            deny="Cancel",
        ),
    )
    return section(text, accessory=disconnect)


def _projects(projects: list[HomeProject], web_url: str) -> list[Block]:
    if not projects:
        lines = "None yet. In a channel, run `/taiga project <slug or project URL>`."
    else:
        lines = "\n".join(
            f"• <#{p.channel_id}> → "
            f"{link(project_url(web_url, p.slug), esc_line(p.name, SUBJECT_MAX))} "
            f"(`{esc_line(p.slug, 100)}`)"
            for p in projects
        )
    return [section(f"*Projects of your channels*\n{lines}")]


def _plans(plans: list[HomePlan]) -> list[Block]:
    title = section(f"*Your recent plans* (the {RECENT_PLANS} newest you asked for or decided)")
    if not plans:
        return [title, context("No plans yet. Mention me in a thread: `@Taiga Planner plan "
                               "Sprint 6`, or run `/taiga plan Sprint 6`.")]
    return [title, *(_plan(plan) for plan in plans)]


def _plan(plan: HomePlan) -> SectionBlock:
    sprint = link(plan.sprint_url, esc_line(plan.sprint, SUBJECT_MAX))
    text = (
        f"*{sprint}* in `{esc_line(plan.project_slug, 100)}` · <#{plan.channel_id}>\n"
        f"{STATE_LABELS.get(plan.state, plan.state)} · {plan.counts} · "
        f"<!date^{int(plan.created_at.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{plan.created_at:%Y-%m-%d %H:%M} UTC>"
    )
    accessory = (
        button("Open plan", f"{ACTION_OPEN_PLAN}:{plan.plan_id}", plan.plan_id,
               url=plan.thread_url)
        if plan.thread_url
        else None
    )
    return section(text, accessory=accessory)
