"""The publisher: due posts published exactly once with two replicas racing; not-yet-due
and cancelled posts stay put."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from services.common.db import Database, new_id, utcnow
from services.content.posts.publisher import Publisher
from services.content.posts.service import POSTS
from tests.content.factories import content_events
from tests.system import System


async def test_two_publishers_release_each_due_post_exactly_once(system: System) -> None:
    now = utcnow()
    community_id = uuid.uuid4()
    due = [new_id() for _ in range(300)]
    later = new_id()
    rows = [
        {
            "id": post_id,
            "community_id": community_id,
            "title": f"Post {i}",
            "body": "b",
            "kind": "announcement",
            "status": "scheduled",
            "publish_at": now - timedelta(seconds=1),
            "calendar_at": now - timedelta(seconds=1),
            "author_id": uuid.uuid4(),
            "created_at": now,
            "updated_at": now,
        }
        for i, post_id in enumerate([*due, later])
    ]
    rows[-1]["publish_at"] = rows[-1]["calendar_at"] = now + timedelta(hours=1)
    content = system.state("content")
    async with content.db.session() as session:
        await session.execute(POSTS.insert(), rows)
        await session.commit()
    # A second replica: its own engine and pool on the same database.
    replica = Database(content.db.url, content.settings, info=content.db.sessionmaker.kw["info"])
    try:
        first, second = Publisher(content.db, batch=25), Publisher(replica, batch=25)
        counts = await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
    finally:
        await replica.dispose()
    assert sum(counts) == len(due)
    assert min(counts[:2]) > 0  # both took a share
    published = await content_events(system, "content.post_published")
    assert sorted(e["post_id"] for e in published) == sorted(str(p) for p in due)
    async with content.db.session() as session:
        statuses = dict((await session.execute(POSTS.select().with_only_columns(POSTS.c.id, POSTS.c.status))).all())
    assert statuses[later] == "scheduled"
    assert {statuses[p] for p in due} == {"published"}
    assert await Publisher(content.db).run_once() == 0


async def test_the_publisher_wakes_itself_at_the_next_due_time(system: System) -> None:
    content = system.state("content")
    now = utcnow()

    def post(at_seconds: float) -> dict[str, object]:
        at = now + timedelta(seconds=at_seconds)
        return {
            "id": new_id(),
            "community_id": uuid.uuid4(),
            "title": "Soon",
            "body": "b",
            "kind": "announcement",
            "status": "scheduled",
            "publish_at": at,
            "calendar_at": at,
            "author_id": uuid.uuid4(),
            "created_at": now,
            "updated_at": now,
        }

    async with content.db.session() as session:
        await session.execute(POSTS.insert(), [post(0.4), post(3600)])
        await session.commit()
    woken = asyncio.Event()
    publisher = Publisher(content.db)
    publisher.wake, publisher.horizon = woken.set, timedelta(seconds=2)
    assert await publisher.run_once() == 0  # nothing due yet: a timer is set for 0.4 s from now
    await asyncio.wait_for(woken.wait(), timeout=2)
    assert utcnow() >= now + timedelta(seconds=0.4)
    woken.clear()
    assert await publisher.run_once() == 1
    await asyncio.sleep(0.1)
    assert not woken.is_set()  # the next post is an hour away: past the horizon, no timer
    async with content.db.session() as session:
        await session.execute(POSTS.insert(), [post(-1), post(-1)])
        await session.commit()
    one_at_a_time = Publisher(content.db, batch=1, max_passes=1)
    one_at_a_time.wake, one_at_a_time.horizon = woken.set, timedelta(seconds=2)
    assert await one_at_a_time.run_once() == 1
    assert woken.is_set()  # one more is due now: run again at once, not at the next poll


async def test_no_timer_for_a_post_already_due(system: System) -> None:
    """A due post the pass did not take (another replica holds it) must not wake the
    publisher again at once: that would spin until the other replica commits."""
    content = system.state("content")
    now = utcnow()
    row = {
        "id": new_id(),
        "community_id": uuid.uuid4(),
        "title": "Held",
        "body": "b",
        "kind": "announcement",
        "status": "scheduled",
        "publish_at": now - timedelta(seconds=1),
        "calendar_at": now - timedelta(seconds=1),
        "author_id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
    }
    async with content.db.session() as session:
        await session.execute(POSTS.insert(), [row])
        await session.commit()
    woken = asyncio.Event()
    publisher = Publisher(content.db)
    publisher.wake, publisher.horizon = woken.set, timedelta(seconds=2)
    async with content.db.session() as other:  # another replica's pass, holding the row
        await other.execute(POSTS.select().where(POSTS.c.id == row["id"]).with_for_update())
        assert await publisher.run_once() == 0
        await asyncio.sleep(0.2)
        assert not woken.is_set()
    assert await publisher.run_once() == 1
