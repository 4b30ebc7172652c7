"""First-run set-up of `.env`: copy `.env.example`, generate the encryption key, and
ask for the values the bot cannot start without when a person is at the terminal."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from dotenv import set_key

from agent.settings import WHERE_TO_GET, Settings
from bot.startup import required_to_run
from storage.crypto import generate_key

SECRET_NAMES = frozenset({"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                          "ANTHROPIC_API_KEY"})
README_SLACK_APP = "README.md#create-the-slack-app-one-paste"
INTRO = f"""Taiga Planner needs a few values before it can start.
- The Slack app comes from manifest.yml: at https://api.slack.com/apps choose Create New App >
  From a manifest, paste manifest.yml and install the app (step by step: {README_SLACK_APP}).
- Secrets are read hidden (nothing shows while you type or paste); press Enter to skip one.
- Answers are saved to .env (readable by you only)."""
MODE_QUESTION = (
    "Receive Slack's requests over Socket Mode (no public URL; needs an app-level token)"
    " or over HTTP (needs a public https URL and the signing secret)? [socket/http; Enter: socket] "
)
HTTP = frozenset({"http", "h"})


def create_env_file(env_path: Path, example_path: Path) -> bool:
    """Write `.env` (readable by its owner only) from the example with a fresh key.
    Returns False when `.env` exists."""
    if not example_path.exists():
        return False
    try:
        descriptor = os.open(env_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as env_file:
        env_file.write(example_path.read_text())
    _save(env_path, "TOKEN_ENCRYPTION_KEYS", generate_key())
    return True


def ask_first_run_questions(
    env_path: Path,
    settings: Settings,
    ask: Callable[[str], str] | None = None,
    say: Callable[[str], None] = print,
) -> bool:
    """On a terminal, ask for every value the bot cannot start without: first where the Slack
    app comes from, then Socket Mode or HTTP when neither is configured, then each value (with
    where to find it). Returns whether anything was saved. Without a terminal (and no `ask`)
    it asks nothing: start-up then stops with one line naming the first missing value."""
    names = [name for name in required_to_run(settings) if not getattr(settings, name)]
    if not names or (ask is None and not sys.stdin.isatty()):
        return False
    say(INTRO)
    if "slack_app_token" in names and (ask or input)(MODE_QUESTION).strip().lower() in HTTP:
        names[names.index("slack_app_token")] = "slack_signing_secret"
    missing = {name.upper(): WHERE_TO_GET.get(name, "") for name in names}
    filled = ask_for_missing(env_path, missing, ask)
    if filled:
        say(f"Saved {', '.join(filled)} to {env_path}.")
    return bool(filled)


def ask_for_missing(
    env_path: Path,
    missing: Mapping[str, str],
    ask: Callable[[str], str] | None = None,
) -> list[str]:
    """Prompt for each missing value, named with where to find it (hidden for secrets; Enter
    skips), and save the answers in `.env`. Returns the names that were filled in."""
    filled = []
    for name, where in missing.items():
        prompt = f"{name} ({where}): " if where else f"{name}: "
        reader = ask or (getpass.getpass if name in SECRET_NAMES else input)
        value = reader(prompt).strip()
        if value:
            _save(env_path, name, value)
            filled.append(name)
    return filled


def _save(env_path: Path, name: str, value: str) -> None:
    """Set `NAME=value` in `.env`, replacing its line or appending one. python-dotenv keeps
    the file's mode, and creates a missing file readable by its owner only."""
    set_key(env_path, name, value, quote_mode="never")
