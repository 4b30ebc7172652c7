"""The test peers as the benchmark uses them: a fresh timed fake Taiga (`tests.peers.timed_taiga`)
and database per run, and small builders for scripted model turns and signed Slack requests.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from slack_sdk.signature import SignatureVerifier

from storage.db import Database
from tests.peers.fake_anthropic import message, text, tool_use
from tests.peers.timed_taiga import TimedTaiga

Json = dict[str, Any]
T = TypeVar("T")


# --------------------------------------------------------------------------- fake Taiga


@contextlib.contextmanager
def running_taiga(latency: float) -> Iterator[TimedTaiga]:
    """A fresh fake Taiga seeded like the recorded samples, answering after `latency` s."""
    fake = TimedTaiga()
    fake.seed_recorded()
    fake.set_latency(latency)
    with fake.running():
        yield fake


@contextlib.contextmanager
def temp_database() -> Iterator[Database]:
    """A migrated SQLite database in a temporary file, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="taiga-planner-bench-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            db.migrate()
            yield db
        finally:
            db.dispose()


# --------------------------------------------------------------------------- model turns


def plan_turn(stories: int, tasks: int, *, prefix: str) -> Json:
    """One model turn proposing `stories` stories with `tasks` tasks each (it ends the loop)."""
    calls = [
        tool_use(
            "taiga_create_user_story",
            {
                "subject": f"{prefix}: story {s}",
                "description": f"Story {s} from the planning meeting, with acceptance criteria.",
                "tags": ["bench"],
                "tasks": [
                    {"subject": f"{prefix}: story {s}, task {t}"} for t in range(1, tasks + 1)
                ],
            },
        )
        for s in range(1, stories + 1)
    ]
    return message(text(f"{stories} stories with {tasks} tasks each."), *calls)


def slow(turn: Json, seconds: float) -> Callable[[Json], Json]:
    """A scripted turn the fake Anthropic answers only after `seconds` (in its own thread)."""

    def answer(_request: Json) -> Json:
        time.sleep(seconds)
        return turn

    return answer


def minutes(lines: int) -> str:
    body = "\n".join(f"- Item {n}: agreed to build part {n} of the feature." for n in range(lines))
    return f"Planning meeting.\n{body}\n"


# --------------------------------------------------------------------------- Slack


def signed_headers(body: str, secret: str) -> dict[str, str]:
    """Headers Slack sends with a request body, signed with the app's signing secret."""
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }


def has_button(params: Json, action_id: str) -> bool:
    return any(
        element.get("action_id") == action_id
        for block in params.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
    )
