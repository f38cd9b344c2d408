"""The membership backfill sends `member.joined_community` again for every current
membership, to content and feedback only (who keep their own copy of memberships)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest_asyncio

from services.common.contracts.members import MemberJoinedCommunity
from services.common.migrations import drop_database, ensure_database, upgrade
from tests.members.test_lean_ingest_migration import run
from tests.pg import pg_url

BEFORE = "9c2e4f1a7b30"  # lean ingest: the revision before the backfill


@pytest_asyncio.fixture
async def url() -> AsyncIterator[str]:
    url = pg_url(f"qunyun_backfill_{secrets.token_hex(4)}_members")
    await ensure_database(url)
    yield url
    await drop_database(url)


async def test_current_memberships_are_sent_again_to_content_and_feedback(url: str) -> None:
    await upgrade("members", url, BEFORE)
    community, staying, left, erased = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    joined = datetime(2026, 10, 3, 9, 15, 30, 250000, tzinfo=UTC)
    await run(
        url,
        "INSERT INTO communities (id, name, description, timezone, created_at, updated_at)"
        " VALUES (:id, 'c', '', 'Asia/Shanghai', :at, :at)",
        id=community,
        at=joined,
    )
    for member_id in (staying, left, erased):
        await run(
            url,
            "INSERT INTO members (id, display_name, tags, attributes, consent_marketing, joined_at, created_at,"
            " updated_at, erased_at) VALUES (:id, 'm', '[]', '{}', false, :at, :at, :at, :erased)",
            id=member_id,
            at=joined,
            erased=joined if member_id == erased else None,
        )
        await run(
            url,
            "INSERT INTO memberships (community_id, member_id, joined_at, joined_date, left_at)"
            " VALUES (:c, :m, :at, :day, :left)",
            c=community,
            m=member_id,
            at=joined,
            day=joined.date(),
            left=joined if member_id == left else None,
        )

    await upgrade("members", url)
    ids = [row[0] for row in await run(url, "SELECT id FROM outbox WHERE type = 'member.joined_community'")]
    assert len(ids) == 1
    event_id = ids[0]
    (data,) = [row[0] for row in await run(url, "SELECT data FROM outbox WHERE id = :id", id=event_id)]
    assert MemberJoinedCommunity.model_validate(data) == MemberJoinedCommunity(
        member_id=staying, community_id=community, joined_at=joined
    )
    routes = await run(url, "SELECT subscriber FROM outbox_pending WHERE event_id = :id ORDER BY 1", id=event_id)
    assert routes == [("content",), ("feedback",)]
