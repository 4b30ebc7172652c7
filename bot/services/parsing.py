"""Pure parsing of what people type: `/taiga` subcommands, plan requests, mentions, project refs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

# Taiga refuses a longer sprint (milestone) name; a longer one is refused before planning.
SPRINT_NAME_MAX = 200
_PROJECT_PATH = re.compile(r"/project/([^/?#]+)")
_SLUG = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True, slots=True)
class Subcommand:
    name: str  # lower-cased first word ("" when nothing was typed)
    rest: str  # everything after the first word on the first line, stripped
    body: str  # the lines after the first one, stripped


def parse_subcommand(text: str) -> Subcommand:
    first, _, body = (text or "").strip().partition("\n")
    name, _, rest = first.strip().partition(" ")
    return Subcommand(name=name.lower(), rest=rest.strip(), body=body.strip())


@dataclass(frozen=True, slots=True)
class PlanText:
    sprint: str
    minutes: str


def parse_plan_args(first_line_rest: str, body: str) -> PlanText:
    """`plan <sprint name>` with the minutes on the following lines."""
    return PlanText(sprint=first_line_rest.strip(), minutes=body.strip())


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """The text of a mention without the bot's own `<@U…>` tokens."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text)
    return text.strip()


@dataclass(frozen=True, slots=True)
class MentionRequest:
    """`@bot plan sprint 6 [minutes]` → sprint + minutes; any other text → only `text`."""

    is_plan: bool
    sprint: str
    minutes: str
    text: str


def parse_mention(text: str, bot_user_id: str | None) -> MentionRequest:
    stripped = strip_mention(text, bot_user_id)
    sub = parse_subcommand(stripped)
    if sub.name == "plan" and sub.rest:
        plan = parse_plan_args(sub.rest, sub.body)
        return MentionRequest(True, plan.sprint, plan.minutes, stripped)
    return MentionRequest(False, "", "", stripped)


def is_plan_command(text: str, bot_user_id: str | None) -> bool:
    """A message that asks the bot for a plan (not minutes)."""
    if not bot_user_id or f"<@{bot_user_id}" not in text:
        return False
    return parse_subcommand(strip_mention(text, bot_user_id)).name == "plan"


# Words that ask for a change to a proposed plan. A mention in a plan's thread refines the plan
# only when it holds one of them, so "thanks, looks good!" never calls the model.
CHANGE_WORDS = frozenset({
    "add", "also", "drop", "remove", "delete", "merge", "combine", "split", "move", "rename",
    "change", "replace", "reword", "rewrite", "include", "exclude", "put", "make", "swap",
    "shorten", "expand", "assign", "instead", "without", "skip", "cut", "turn", "update", "fix",
    "separate", "reorder",
})
_WORD = re.compile(r"[a-z]+")


def asks_for_change(text: str) -> bool:
    """Whether a mention in a plan's thread asks to change the plan (by its words)."""
    return any(word in CHANGE_WORDS for word in _WORD.findall(text.casefold()))


def project_ref(argument: str) -> str | None:
    """A project slug from `slug`, a Taiga project URL (`…/project/<slug>/…`), or Slack's
    `<url>` / `<url|label>` form. None when it is neither."""
    value = argument.strip().strip("<>").split("|", 1)[0].strip()
    if not value:
        return None
    if "://" in value:
        match = _PROJECT_PATH.search(urlparse(value).path)
        return unquote(match.group(1)) if match else None
    return value if _SLUG.match(value) else None
