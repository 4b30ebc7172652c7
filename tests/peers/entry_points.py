"""The real entry points as processes: `python -m bot` and `uvicorn bot.server:api`, run from an
empty folder (no stray .env) with only the settings a test gives, stdin closed (no prompts).

`start(...)` returns a `Running` process whose stderr a test can wait on; `finish(...)` runs one
to its end. `problems(stderr)` is what a person would read: every line but uvicorn's INFO ones."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from storage.crypto import generate_key
from tests.peers.fake_slack import FakeSlack
from tests.peers.ports import free_port

# `python -m bot`'s log format, or uvicorn's own ("INFO:     …").
RECORD_START = re.compile(
    r"^(?:\d{4}-\d\d-\d\d [\d:,]+ (?P<level>[A-Z]+) |(?P<uvicorn_level>[A-Z]+):\s)"
)
ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # generous: the machine is shared
BOT = ("-m", "bot")
UVICORN = ("-m", "uvicorn", "bot.server:api", "--host", "127.0.0.1")



def settings_for(fake: FakeSlack, folder: Path, **overrides: str) -> dict[str, str]:
    """A complete Socket Mode configuration against the fake Slack, SQLite in `folder`."""
    return {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
        "ANTHROPIC_API_KEY": "sk-test",
        "TOKEN_ENCRYPTION_KEYS": generate_key(),
        "DATABASE_URL": f"sqlite:///{folder / 'planner.db'}",
        "TAIGA_API_URL": "http://127.0.0.1:9/api/v1",
    } | overrides


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    stderr_path: Path
    port: int

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, check: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = self.stderr
            if check(text):
                return text
            if self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode} before {what}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {WAIT:g} s:\n{self.stderr}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)


def start(entry: tuple[str, ...], folder: Path, settings: Mapping[str, str]) -> Running:
    given = settings.get("PORT", "")
    port = int(given) if given.isdigit() else free_port()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "PORT": str(port)}
    env |= settings
    argv = [sys.executable, *entry] + (["--port", str(port)] if entry == UVICORN else [])
    stderr_path = folder / f"stderr-{time.monotonic_ns()}.txt"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Running(process, stderr_path, port)


def finish(entry: tuple[str, ...], folder: Path, settings: Mapping[str, str]) -> tuple[int, str]:
    """Run to the end (bounded): the exit code and stderr."""
    running = start(entry, folder, settings)
    try:
        return running.process.wait(timeout=WAIT), running.stderr
    finally:
        running.kill()


def problems(stderr: str) -> list[str]:
    """The lines a person reads: everything but INFO records (which may span lines)."""
    kept, level = [], ""
    for line in stderr.splitlines():
        started = RECORD_START.match(line)
        if started:
            level = started.group("level") or started.group("uvicorn_level")
        elif line.startswith("error:"):
            level = "ERROR"
        if line.strip() and level != "INFO":
            kept.append(line)
    return kept


def assert_one_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Unclosed" not in stderr, stderr
    lines = problems(stderr)
    assert len(lines) == 1, stderr
    assert expected in lines[0], stderr


def terminated(code: int) -> bool:
    """uvicorn re-raises SIGTERM after its clean shutdown; `python -m bot` exits 0."""
    return code in (0, -signal.SIGTERM)
