"""A small in-process TTL cache with single-flight loading, for the per-request hot path.

Each gateway replica keeps its own: a change made through this replica invalidates the
entry at once; other replicas see it when their entry expires (the TTL bounds staleness).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self, ttl_seconds: float, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock  # tests move it forward instead of sleeping
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        # Bumped by every invalidation: a load that began before it must not store its stale value.
        self._generation = 0

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry[0] <= self.clock():
            self._entries.pop(key, None)
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: K) -> None:
        self._generation += 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._loading.clear()

    async def get_or_load(
        self, key: K, load: Callable[[], Awaitable[V]], keep: Callable[[V], bool] = lambda _: True
    ) -> V:
        """The cached value, or load it once even when many requests miss at the same moment.
        A loaded value `keep` refuses is shared with the requests waiting for it, not stored."""
        hit, value = self.get(key)
        if hit:
            return value  # type: ignore[return-value]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            future.set_result(value)
            if generation == self._generation and keep(value):
                self.put(key, value)
            return value
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
