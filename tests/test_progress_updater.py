"""The background progress updater (newest state, at most one update a second, 429s waited
out in its own task) and the steps board, against the fake Slack on loopback."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from agent.progress import Step, Steps
from bot.app import build_slack_client
from bot.services.updater import CoalescingUpdater, progress_client
from tests.peers.clock import FakeClock
from tests.peers.fake_slack import FakeSlack
from tests.peers.slack_harness import WAIT

LONG = 5.0


class GatedClock(FakeClock):
    """A fake clock whose long sleeps (a Retry-After) last until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds >= LONG:
            self.sleeps.append(seconds)
            await self.gate.wait()
            self.time += seconds
            return
        await super().sleep(seconds)


def test_a_new_step_completes_the_one_before_and_a_failure_names_its_reason() -> None:
    steps = Steps()
    steps.update(Step("read", "Reading the project"))
    steps.update(Step("stories", "Creating stories 1/2"))
    steps.update(Step("stories", "Creating stories 2/2"))
    steps.fail("Taiga refused the task.")

    assert steps.snapshot() == (
        Step("read", "Reading the project", "complete"),
        Step("stories", "Creating stories 2/2", "error", "Taiga refused the task."),
    )


@pytest.mark.anyio
async def test_the_newest_state_is_sent_at_most_once_per_interval() -> None:
    clock = FakeClock()
    sent: list[tuple[str, float]] = []
    one_sent, two_sent = asyncio.Event(), asyncio.Event()

    async def send(state: str) -> None:
        sent.append((state, clock.now()))
        (one_sent if len(sent) == 1 else two_sent).set()

    updater: CoalescingUpdater[str] = CoalescingUpdater(send, clock=clock, interval=1.0)
    for state in ("one", "two", "three"):
        updater.offer(state)  # never waits: the producer moves on
    with anyio.fail_after(WAIT):
        await one_sent.wait()
    updater.offer("four")
    updater.offer("five")
    with anyio.fail_after(WAIT):
        await two_sent.wait()
    await updater.close()

    assert [state for state, _ in sent] == ["three", "five"]
    assert sent[1][1] - sent[0][1] >= 1.0


@pytest.mark.anyio
async def test_a_429_is_waited_out_in_the_background_and_then_the_newest_state_is_shown(
    fake_slack: FakeSlack,
) -> None:
    channel = fake_slack.add_channel("progress")
    slack = progress_client(
        AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url)
    )
    ts = (await slack.chat_postMessage(channel=channel, text="Starting"))["ts"]
    clock = GatedClock()

    async def send(state: str) -> None:
        await slack.chat_update(channel=channel, ts=ts, text=state)

    fake_slack.rate_limit("chat.update", 1, retry_after=30)
    updater: CoalescingUpdater[str] = CoalescingUpdater(send, clock=clock, interval=1.0)
    updater.offer("Creating stories 1/3")
    await fake_slack.wait_for("chat.update", lambda c: c.status == 429, within=WAIT)
    updater.offer("Creating stories 2/3")  # Slack said wait 30 s; the producer did not
    updater.offer("Creating stories 3/3")
    clock.gate.set()
    shown = await fake_slack.wait_for("chat.update", lambda c: c.ok, within=WAIT)
    await updater.close()

    assert 30.0 in clock.sleeps
    assert shown.params["text"] == "Creating stories 3/3"
    assert [c.params["text"] for c in fake_slack.calls("chat.update") if c.ok] == [
        "Creating stories 3/3"
    ]


def test_the_progress_client_leaves_429s_to_the_updater() -> None:
    from agent.settings import Settings

    settings = Settings(_env_file=None, slack_bot_token="xoxb-1")  # type: ignore[call-arg]
    full = build_slack_client(settings)
    progress = progress_client(full)
    def rate_limit_handlers(client: AsyncWebClient) -> int:
        return sum(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers)

    assert rate_limit_handlers(full) == 1 and rate_limit_handlers(progress) == 0
    assert len(progress.retry_handlers) == len(full.retry_handlers) - 1
    assert progress.base_url == full.base_url and progress.token == full.token
