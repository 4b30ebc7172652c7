"""Progress reports a caller may pass to planning and applying ("Reading the project…")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]


async def report(progress: Progress | None, text: str) -> None:
    """Send `text` to `progress`; a failing report is logged, never raised: progress is cosmetic
    and must not break planning or a write."""
    if progress is None:
        return
    try:
        await progress(text)
    except Exception:
        log.warning("progress callback failed", exc_info=True)
