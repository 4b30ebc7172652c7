"""Cross-cutting work for every request: the shared services and the caller's Taiga identity.

`attach_services` puts the `Services` in `context["services"]`. The caller's linked Taiga account
(tokens decrypted) is read by `with_link` when the listener's background work runs, not before
the ack: a database read on every request would sit on the path Slack waits on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt.context.async_context import AsyncBoltContext

from bot.services.core import Services
from storage import repositories as repo
from storage.crypto import EncryptionKeyError

logger = logging.getLogger(__name__)

Next = Callable[[], Awaitable[None]]
Middleware = Callable[..., Awaitable[None]]
LinkedWork = Callable[[repo.TaigaLinkView | None], Awaitable[None]]


def attach_services(services: Services) -> Middleware:
    async def services_middleware(context: AsyncBoltContext, next: Next) -> None:
        context["services"] = services
        await next()

    return services_middleware


async def with_link(
    services: Services, team_id: str | None, user_id: str | None, work: LinkedWork
) -> None:
    """Run `work` with the caller's linked account (None when not linked), read now."""
    await work(await find_link(services, team_id, user_id))


async def find_link(
    services: Services, team_id: str | None, user_id: str | None
) -> repo.TaigaLinkView | None:
    """The user's linked account, or None (also when no key can decrypt the stored tokens)."""
    if not team_id or not user_id:
        return None
    cipher = services.cipher
    try:
        return await services.db.run(
            lambda s: repo.get_link(s, cipher=cipher, team_id=team_id, user_id=user_id)
        )
    except EncryptionKeyError:
        logger.warning("stored Taiga tokens of %s/%s cannot be decrypted", team_id, user_id)
        return None

