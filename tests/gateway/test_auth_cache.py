"""The hot-path cache: one load for many concurrent misses; an invalidation beats a racing load."""

import asyncio

import pytest

from services.gateway.auth.cache import TTLCache


async def test_concurrent_misses_load_once() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl_seconds=60)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return 7

    assert await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(20))) == [7] * 20
    assert loads == 1
    assert cache.get("k") == (True, 7)


async def test_invalidation_during_a_load_keeps_the_stale_value_out() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl_seconds=60)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_old_load() -> str:
        started.set()
        await release.wait()
        return "old"

    racing = asyncio.create_task(cache.get_or_load("k", slow_old_load))
    await started.wait()
    cache.invalidate("k")  # the change commits while the old state is being read
    release.set()
    assert await racing == "old"
    assert cache.get("k") == (False, None)

    async def fresh_load() -> str:
        return "new"

    assert await cache.get_or_load("k", fresh_load) == "new"


async def test_entries_expire_and_size_is_bounded() -> None:
    cache: TTLCache[int, int] = TTLCache(ttl_seconds=0.01, max_entries=3)
    for n in range(5):
        cache.put(n, n)
    assert [cache.get(n)[0] for n in range(5)] == [False, False, True, True, True]
    await asyncio.sleep(0.02)
    assert cache.get(4) == (False, None)


async def test_a_failed_load_is_not_cached() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl_seconds=60)

    async def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load("k", broken)

    async def working() -> int:
        return 1

    assert await cache.get_or_load("k", working) == 1
