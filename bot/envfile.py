"""First-run set-up of `.env`: copy `.env.example`, generate the encryption key, and
ask for the values the bot cannot start without when a person is at the terminal."""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from storage.crypto import generate_key

SECRET_NAMES = frozenset({"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                          "ANTHROPIC_API_KEY"})


def create_env_file(env_path: Path, example_path: Path) -> bool:
    """Write `.env` from the example with a fresh key. Returns False when `.env` exists."""
    if env_path.exists() or not example_path.exists():
        return False
    text = example_path.read_text()
    text = set_value(text, "TOKEN_ENCRYPTION_KEYS", generate_key())
    env_path.write_text(text)
    env_path.chmod(0o600)
    return True


def set_value(text: str, name: str, value: str) -> str:
    """Set `NAME=value` in env-file text, replacing the line or appending one."""
    line = f"{name}={value}"
    pattern = re.compile(rf"^{re.escape(name)}=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: line, text, count=1)
    return text.rstrip("\n") + f"\n{line}\n"


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
    text = env_path.read_text() if env_path.exists() else ""
    for name, where in missing.items():
        prompt = f"{name} ({where}): " if where else f"{name}: "
        reader = ask or (getpass.getpass if name in SECRET_NAMES else input)
        value = reader(prompt).strip()
        if value:
            text = set_value(text, name, value)
            filled.append(name)
    env_path.write_text(text)
    return filled
