"""Forbidden-terms lists per community, and the check against a community's list.

The posts domain calls `flags_for` (submit, approve, the check on a post) and stores what
it answers on the post; this module knows nothing of posts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of
from services.content.compliance.checker import Flag, Term, check
from services.content.compliance.defaults import DEFAULT_TERMS
from services.content.compliance.models import ForbiddenTermList
from services.content.compliance.schemas import ForbiddenTermBody

LISTS = table_of(ForbiddenTermList)


async def load_terms(session: AsyncSession, community_id: uuid.UUID) -> tuple[list[Term], datetime | None]:
    """The community's list and when it was set (None: the defaults)."""
    row = (
        await session.execute(sa.select(LISTS.c.terms, LISTS.c.updated_at).where(LISTS.c.community_id == community_id))
    ).first()
    if row is None:
        return list(DEFAULT_TERMS), None
    return [Term(item["term"], item["category"], item.get("match", "phrase")) for item in row.terms], row.updated_at


async def save_terms(
    session: AsyncSession, community_id: uuid.UUID, items: Sequence[ForbiddenTermBody], now: datetime
) -> list[Term]:
    """Replace the community's list (validated by the schema: phrases of 2+ characters,
    known patterns, no duplicates)."""
    values: dict[str, Any] = {"terms": [item.model_dump() for item in items], "updated_at": now}
    stmt = postgresql.insert(LISTS).values(community_id=community_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[LISTS.c.community_id], set_=values))
    return [Term(item.term, item.category, item.match) for item in items]


async def flags_for(session: AsyncSession, community_id: uuid.UUID, title: str, body: str) -> list[Flag]:
    """Check a title and body against the community's list."""
    terms, _ = await load_terms(session, community_id)
    return check(title, body, terms)


def flags_json(flags: Sequence[Flag]) -> list[dict[str, Any]]:
    """Flags as stored on a post (and answered)."""
    return [asdict(flag) for flag in flags]


def describe(flags: Sequence[dict[str, Any]], limit: int = 5) -> str:
    """`"全网最低" (absolute_claim) in body at 5-9, ...` for a problem's detail (pattern
    names, never the personal data they matched)."""
    parts = [f"{f['term']!r} ({f['category']}) in {f['field']} at {f['start']}-{f['end']}" for f in flags[:limit]]
    if len(flags) > limit:
        parts.append(f"and {len(flags) - limit} more")
    return ", ".join(parts)
