"""First-run set-up of `.env`: copy `.env.example`, generate the encryption key, and
ask for the values the bot cannot start without when a person is at the terminal."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from dotenv import set_key

from storage.crypto import generate_key

SECRET_NAMES = frozenset({"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                          "ANTHROPIC_API_KEY"})


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


def ask_for_missing(
    env_path: Path,
    missing: Mapping[str, str],
    ask: Callable[[str], str] | None = None,
) -> list[str]:
    """Prompt for each missing value, named with where to find it (hidden for secrets), and
    save the answers in `.env`.

    Returns the names that were filled in. Does nothing unless stdin is a terminal or
    an `ask` function is given."""
    if ask is None and not sys.stdin.isatty():
        return []
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
