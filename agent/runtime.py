"""The shared clients, built once at start-up from `Settings` and injected everywhere.

Building them makes no network call: the database engine connects lazily, and the Taiga and
Anthropic clients only open connections when first used.
"""

from __future__ import annotations

from dataclasses import dataclass

from anthropic import AsyncAnthropic

from agent.identity import LinkRefresher
from agent.settings import Settings
from storage.crypto import TokenCipher
from storage.db import Database
from taiga.client import Clock, SystemClock, TaigaClient


@dataclass
class Runtime:
    settings: Settings
    db: Database
    taiga: TaigaClient
    anthropic: AsyncAnthropic
    clock: Clock
    cipher: TokenCipher | None = None  # None when TOKEN_ENCRYPTION_KEYS is unset (no stored links)
    refresher: LinkRefresher | None = None

    async def aclose(self) -> None:
        await self.taiga.aclose()
        await self.anthropic.close()
        self.db.dispose()


def build_runtime(
    settings: Settings,
    *,
    db: Database | None = None,
    taiga: TaigaClient | None = None,
    anthropic: AsyncAnthropic | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """Build every shared client from `settings` (any of them may be passed in instead)."""
    clock = clock or SystemClock()
    db = db or Database(settings.database_url.get_secret_value())
    taiga = taiga or TaigaClient(settings.taiga_api_url, clock=clock)
    anthropic = anthropic or AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value() or None,
        base_url=settings.anthropic_base_url,
    )
    cipher = TokenCipher(settings.token_encryption_keys) if settings.token_encryption_keys else None
    refresher = LinkRefresher(db=db, cipher=cipher, taiga=taiga) if cipher is not None else None
    return Runtime(
        settings=settings,
        db=db,
        taiga=taiga,
        anthropic=anthropic,
        clock=clock,
        cipher=cipher,
        refresher=refresher,
    )
