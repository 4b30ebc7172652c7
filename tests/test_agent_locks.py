"""Per-key locks: one lock per key while it is in use, nothing kept once it is not."""

from __future__ import annotations

import gc

import anyio
import pytest

from agent.locks import KeyedLocks


@pytest.mark.anyio
async def test_a_key_in_use_has_one_lock_and_keys_no_longer_used_are_forgotten() -> None:
    locks: KeyedLocks[tuple[str, str]] = KeyedLocks()
    held = locks(("T1", "U0"))
    async with held:
        assert locks(("T1", "U0")) is held and held.locked()
        for n in range(1, 10_000):  # a long-running process sees many users come and go
            async with locks(("T1", f"U{n}")):
                await anyio.lowlevel.checkpoint()
        gc.collect()
        assert len(locks) == 1  # only the lock still held

    del held
    gc.collect()
    assert len(locks) == 0


@pytest.mark.anyio
async def test_the_second_holder_of_a_key_waits_for_the_first() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, release: anyio.Event | None) -> None:
        async with locks("U1"):
            order.append(f"{name} in")
            if release is not None:
                await release.wait()
            order.append(f"{name} out")

    release = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(hold, "first", release)
        await anyio.wait_all_tasks_blocked()
        tasks.start_soon(hold, "second", None)
        await anyio.wait_all_tasks_blocked()
        release.set()

    assert order == ["first in", "first out", "second in", "second out"]
