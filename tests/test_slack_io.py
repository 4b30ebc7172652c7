"""Reading a thread from Slack: every page, and never forever."""

from __future__ import annotations

from typing import Any

import pytest

from bot.services.errors import UserError
from bot.services.slack_io import MAX_REPLY_PAGES, THREAD_TOO_LONG, thread_messages


class EndlessReplies:
    """A conversations.replies whose every page says there is another one."""

    def __init__(self) -> None:
        self.calls = 0

    async def conversations_replies(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        assert self.calls <= 10 * MAX_REPLY_PAGES, "paged on without end"
        return {
            "messages": [{"ts": f"{self.calls}.0", "text": "more"}],
            "response_metadata": {"next_cursor": f"page-{self.calls + 1}"},
        }


@pytest.mark.anyio
async def test_a_thread_whose_pages_never_end_stops_with_a_plain_sentence() -> None:
    slack = EndlessReplies()

    with pytest.raises(UserError) as raised:
        await thread_messages(slack, channel="C1", thread_ts="1.0")  # type: ignore[arg-type]

    assert raised.value.text == THREAD_TOO_LONG
    assert slack.calls == MAX_REPLY_PAGES
