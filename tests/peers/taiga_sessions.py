"""Taiga sessions against the fake Taiga, as a test acting for a person needs them: one client
per test (`taiga_client`), `session_as(fake, client, username)`, and Alice's session (`alice`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taiga.client import TaigaClient, TaigaSession
from taiga.models import TaigaTokens
from tests.peers.clock import FakeClock
from tests.peers.fake_taiga import FakeTaiga


@pytest.fixture
async def taiga_client(fake_taiga: FakeTaiga) -> AsyncIterator[TaigaClient]:
    taiga = TaigaClient(fake_taiga.api_url, clock=FakeClock())
    try:
        yield taiga
    finally:
        await taiga.aclose()


def session_as(fake: FakeTaiga, client: TaigaClient, username: str) -> TaigaSession:
    """A session with `username`'s tokens from the fake Taiga."""
    return client.session(TaigaTokens(**fake.login_tokens(username)))


@pytest.fixture
def alice(fake_taiga: FakeTaiga, taiga_client: TaigaClient) -> TaigaSession:
    return session_as(fake_taiga, taiga_client, "alice")
