"""Locks by key (a user, a plan) that take memory only while someone holds or awaits them."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """`asyncio.Lock`s by key, held weakly: a key's lock is forgotten once no task holds or
    awaits it, so a process that sees millions of keys keeps only those in use."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[K, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __call__(self, key: K) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        return len(self._locks)
