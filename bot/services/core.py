"""The shared pieces every listener hands work to, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from anthropic import AsyncAnthropic
from slack_sdk.web.async_client import AsyncWebClient

from agent.identity import LinkRefresher
from agent.runtime import Runtime
from agent.settings import Settings
from bot.services.directory import SlackDirectory
from bot.services.errors import explain, log_failure
from bot.services.pool import QUEUED, TOO_BUSY, Admission, WorkPool
from bot.services.slack_io import Tell, esc
from storage.crypto import TokenCipher
from storage.db import Database
from storage.models import utcnow
from taiga.client import Clock, TaigaClient

logger = logging.getLogger(__name__)

# Slack gives 3 s for an answer; a sign-in from the login modal must fit well inside.
LOGIN_TIMEOUT_SECONDS = 2.2


@dataclass(eq=False)
class Services:
    """The runtime's shared clients plus Slack's, and the background tasks listeners started.

    `runtime.clock` (monotonic, injectable) throttles status updates; `now` (wall clock,
    injectable) decides proposal expiry."""

    runtime: Runtime
    slack: AsyncWebClient
    now: Callable[[], datetime] = utcnow
    status_interval: float = 1.0
    login_timeout: float = LOGIN_TIMEOUT_SECONDS
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _pool: WorkPool = field(init=False, repr=False)
    directory: SlackDirectory = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.runtime.cipher is None or self.runtime.refresher is None:
            raise ValueError("the Slack bot needs TOKEN_ENCRYPTION_KEYS to store Taiga links")
        settings = self.runtime.settings
        self._pool = WorkPool(settings.max_concurrent_work, settings.max_queued_work)
        self.directory = SlackDirectory(
            self.slack, ttl=settings.slack_name_cache_seconds, timer=self.runtime.clock.now
        )

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def cipher(self) -> TokenCipher:
        assert self.runtime.cipher is not None
        return self.runtime.cipher

    @property
    def refresher(self) -> LinkRefresher:
        assert self.runtime.refresher is not None
        return self.runtime.refresher

    @property
    def taiga(self) -> TaigaClient:
        return self.runtime.taiga

    @property
    def anthropic(self) -> AsyncAnthropic:
        return self.runtime.anthropic

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def spawn(
        self, work: Coroutine[Any, Any, None], *, name: str, tell: Tell | None = None
    ) -> asyncio.Task[None]:
        """Run `work` after the listener has acknowledged, through the bounded pool (`tell`,
        the person who asked, hears when it waits its turn or the queue is full). A failure is
        logged, never raised, and `tell` gets a plain sentence instead of silence."""
        admission = self._pool.admit()
        if admission is None:
            work.close()
            logger.warning("background work %s refused: the queue is full", name)
            text = TOO_BUSY.format(waiting=self._pool.waiting)
            return self._track(_say(tell, text), name=f"{name}-refused")
        task = self._track(self._guard(work, name, tell, admission), name=name)
        task.add_done_callback(lambda _task: self._pool.leave())
        return task

    def spawn_unbounded(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Short bookkeeping that must neither wait its turn nor be refused (storing a login,
        redrawing a Home tab, asking Slack who the bot is): started at once, outside the pool,
        so a burst of plans cannot drop it. A failure is logged."""
        return self._track(self._logged(work, name), name=name)

    async def _logged(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log_failure(f"background work {name} failed", error)

    def _track(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(
        self, work: Coroutine[Any, Any, None], name: str, tell: Tell | None, admission: Admission
    ) -> None:
        try:
            if admission.queued:
                logger.info("background work %s queued at %d", name, admission.position)
                await _say(tell, QUEUED.format(position=admission.position))
            async with self._pool.run():
                await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log_failure(f"background work {name} failed", error)
            await _say(tell, esc(explain(error)))
        finally:
            work.close()  # a no-op once it ran; cancelled while queued, it never starts

    async def drain(self) -> None:
        """Wait for every background task started so far (and those they start)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _say(tell: Tell | None, text: str) -> None:
    """Tell the person who asked, if anyone; a failure to reach them is logged, not raised."""
    if tell is None:
        return
    try:
        await tell(text)
    except Exception as error:
        log_failure("could not tell the requester", error)

