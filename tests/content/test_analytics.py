"""`GET /v1/analytics/content`: posts published in a window (by kind) and posts scheduled now."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from services.common.db import new_id, utcnow
from services.content.posts.publisher import Publisher
from services.content.posts.service import POSTS
from tests.content.factories import z
from tests.system import System, member, staff

ANALYST = staff("analyst")


def post(community_id: uuid.UUID, kind: str, publish_at: datetime) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(),
        "community_id": community_id,
        "title": "Hello",
        "body": "b",
        "kind": kind,
        "status": "scheduled",
        "publish_at": publish_at,
        "calendar_at": publish_at,
        "author_id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
    }


async def figures(system: System, **params: Any) -> Any:
    async with await system.client(ANALYST) as client:
        response = await client.get("/v1/analytics/content", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_published_in_the_window_and_scheduled_now(system: System) -> None:
    now = utcnow()
    here, elsewhere = uuid.uuid4(), uuid.uuid4()
    rows = [
        post(here, "announcement", now - timedelta(minutes=5)),
        post(here, "announcement", now - timedelta(minutes=4)),
        post(here, "tip", now - timedelta(minutes=3)),
        post(elsewhere, "promotion", now - timedelta(minutes=2)),
        post(here, "announcement", now + timedelta(days=1)),  # waits
        post(elsewhere, "tip", now + timedelta(days=2)),  # waits
    ]
    content = system.state("content")
    async with content.db.session() as session:
        await session.execute(POSTS.insert(), rows)
        await session.commit()
    assert await Publisher(content.db).run_once() == 4

    local = await figures(system, community_id=str(here))
    assert (local["published"], local["published_by_kind"], local["scheduled"]) == (3, {"announcement": 2, "tip": 1}, 1)
    everywhere = await figures(system)
    assert (everywhere["published"], everywhere["scheduled"]) == (4, 2)
    # Publication times count, not creation: a window that ended before is empty.
    past = await figures(
        system, community_id=str(here), **{"from": z(now - timedelta(days=2)), "to": z(now - timedelta(days=1))}
    )
    assert (past["published"], past["published_by_kind"], past["scheduled"]) == (0, {}, 1)


async def test_the_window_is_checked_and_the_figures_are_for_staff(system: System) -> None:
    async with await system.client(ANALYST) as client:
        wrong = await client.get(
            "/v1/analytics/content", params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        )
        assert wrong.status_code == 422
    for identity in (staff("reviewer"), member(uuid.uuid4())):
        async with await system.client(identity) as client:
            assert (await client.get("/v1/analytics/content")).status_code == 403
