"""Turning `activity.recorded` events into points, streaks, levels and badges, a batch at a time.

One call handles a whole batch in the request's transaction with set-based statements:
lock the accounts of every member in the batch (member id order), count activities,
record check-in days, apply each matching rule once per (event, rule) within the
member's daily cap for the event's local day, post the awards to the ledger, feed the
leaderboards, then settle levels and badges. The number of statements does not grow
with the number of events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded, known_zone
from services.common.contracts.feedback import SuggestionCompleted
from services.common.db import table_of, utcnow
from services.common.events import Event
from services.rewards.badges import service as badges
from services.rewards.earning.models import ActivityCount, CheckInDay, Community, DailyEarning
from services.rewards.earning.sanctions import Silenced
from services.rewards.leaderboards import service as leaderboards
from services.rewards.points.service import AccountState, Postings, lock_accounts, lot_expiry, points_awarded
from services.rewards.program.service import Rule, load_program
from services.rewards.sql import array_rows, insert_rows, row_params

COUNTS = table_of(ActivityCount)
CHECK_INS = table_of(CheckInDay)
COMMUNITIES = table_of(Community)
DAILY = table_of(DailyEarning)

CHECK_IN = "check_in"
SUGGESTION_COMPLETED = "suggestion_completed"
DEFAULT_ZONE = "Asia/Shanghai"  # members' default community zone, for a community rewards has not seen


async def activity_from_suggestion(session: AsyncSession, completed: SuggestionCompleted) -> ActivityRecorded:
    """A completed suggestion as an activity of its author, so the rule `suggestion_completed`
    pays it like any earning rule (once per event, capped, counted for badges)."""
    zone = await session.scalar(sa.select(COMMUNITIES.c.timezone).where(COMMUNITIES.c.id == completed.community_id))
    zone = zone or DEFAULT_ZONE
    return ActivityRecorded(
        activity_id=completed.suggestion_id,
        member_id=completed.member_id,
        community_id=completed.community_id,
        type=SUGGESTION_COMPLETED,
        occurred_at=completed.completed_at,
        local_date=completed.completed_at.astimezone(known_zone(zone)).date(),
        timezone=zone,
        properties={},
    )


async def apply_activity_batch(session: AsyncSession, events: Sequence[Event[ActivityRecorded]]) -> None:
    """Apply a batch of new `activity.recorded` events (the inbox has already dropped repeats
    and read each with its contract: a malformed one never gets here)."""
    activities = [(event.id, event.data) for event in events]
    if not activities:
        return
    now = utcnow()
    rules, levels = await load_program(session)
    await _remember_zones(session, [a for _, a in activities], now)
    accounts = await lock_accounts(session, (a.member_id for _, a in activities), now)
    activities = [(event_id, a) for event_id, a in activities if accounts[a.member_id].erased_at is None]
    if not activities:
        return
    counts = await _count_activities(session, [a for _, a in activities])
    streaks = await _record_check_ins(session, [a for _, a in activities if a.type == CHECK_IN], accounts)
    postings = Postings(now)
    await _award(session, activities, rules, accounts, postings)
    level_ranks = postings.settle_levels(levels)
    await postings.flush(session)
    await badges.award_earned(session, now=now, levels=levels, counts=counts, streaks=streaks, level_ranks=level_ranks)


# $1 community ids (in id order), $2 their zones, $3 now. A community whose zone is already
# recorded is left out before the upsert, so batches do not lock (and wait for each other
# on) the few rows every batch names; only a new community or a changed zone is written.
_REMEMBER_ZONES = """INSERT INTO communities (id, timezone, updated_at)
SELECT v.id, v.timezone, $3::timestamptz
FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS v(id, timezone, position)
WHERE NOT EXISTS (SELECT 1 FROM communities c WHERE c.id = v.id AND c.timezone = v.timezone)
ORDER BY v.position
ON CONFLICT (id) DO UPDATE SET timezone = excluded.timezone, updated_at = excluded.updated_at
WHERE communities.timezone <> excluded.timezone"""


async def _remember_zones(session: AsyncSession, activities: Sequence[ActivityRecorded], now: datetime) -> None:
    zones = {a.community_id: a.timezone for a in activities}
    ordered = sorted(zones, key=lambda community_id: community_id.int)
    connection = await session.connection()
    await connection.exec_driver_sql(_REMEMBER_ZONES, (ordered, [zones[c] for c in ordered], now))


async def _count_activities(
    session: AsyncSession, activities: Sequence[ActivityRecorded]
) -> dict[tuple[uuid.UUID, str], int]:
    """Add to the per-member activity counts; returns the new totals (for count badges)."""
    added: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for a in activities:
        added[(a.member_id, a.type)] += 1
    columns = ("member_id", "event_type", "total")
    insert = insert_rows(COUNTS, columns)
    rows = await session.execute(
        insert.on_conflict_do_update(
            index_elements=[COUNTS.c.member_id, COUNTS.c.event_type],
            set_={"total": COUNTS.c.total + insert.excluded.total},
        ).returning(COUNTS.c.member_id, COUNTS.c.event_type, COUNTS.c.total),
        row_params(columns, [{"member_id": m, "event_type": t, "total": n} for (m, t), n in added.items()]),
    )
    return {(row.member_id, row.event_type): row.total for row in rows}


async def _record_check_ins(
    session: AsyncSession, check_ins: Sequence[ActivityRecorded], accounts: dict[uuid.UUID, AccountState]
) -> dict[uuid.UUID, int]:
    """Record check-in days and extend streaks; returns the streaks that changed.

    A day already recorded changes nothing. A day right after the streak's last day extends
    it, a later one starts a new streak. A day before the last one (arriving late) may join
    runs, so that member's streak is recomputed from the recorded days.
    """
    if not check_ins:
        return {}
    latest_zone: dict[uuid.UUID, str] = {}
    days = set()
    for a in check_ins:
        days.add((a.member_id, a.local_date))
        latest_zone[a.member_id] = a.timezone
    columns = ("member_id", "local_date")
    new_days = await session.execute(
        insert_rows(CHECK_INS, columns)
        .on_conflict_do_nothing()
        .returning(CHECK_INS.c.member_id, CHECK_INS.c.local_date),
        row_params(columns, [{"member_id": m, "local_date": d} for m, d in days]),
    )
    by_member: dict[uuid.UUID, list[date]] = defaultdict(list)
    for row in new_days:
        by_member[row.member_id].append(row.local_date)
    recompute = []
    changed: dict[uuid.UUID, int] = {}
    for member_id, member_days in by_member.items():
        account = accounts[member_id]
        account.timezone = latest_zone[member_id]
        account.changed = True
        for day in sorted(member_days):
            last = account.streak_last_date
            if last is not None and day < last:
                recompute.append(member_id)
                break
            if last is not None and day == last + timedelta(days=1):
                account.streak_days += 1
            else:
                account.streak_days = 1
            account.streak_last_date = day
        changed[member_id] = account.streak_days
    if recompute:
        rows = await session.execute(
            sa.select(CHECK_INS.c.member_id, CHECK_INS.c.local_date)
            .where(CHECK_INS.c.member_id.in_(recompute))
            .order_by(CHECK_INS.c.member_id, CHECK_INS.c.local_date.desc())
        )
        history: dict[uuid.UUID, list[date]] = defaultdict(list)
        for row in rows:
            history[row.member_id].append(row.local_date)
        for member_id, newest_first in history.items():
            run = 1
            while run < len(newest_first) and newest_first[run] == newest_first[run - 1] - timedelta(days=1):
                run += 1
            account = accounts[member_id]
            account.streak_days, account.streak_last_date = run, newest_first[0]
            changed[member_id] = run
    return changed


async def _award(
    session: AsyncSession,
    activities: Sequence[tuple[uuid.UUID, ActivityRecorded]],
    rules: Sequence[Rule],
    accounts: dict[uuid.UUID, AccountState],
    postings: Postings,
) -> None:
    """Apply every matching rule once per event, within daily caps, in event order."""
    by_type: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_type[rule.event_type].append(rule)
    matches = [
        (a, rule) for _, a in activities for rule in by_type.get(a.type, ()) if rule.matches(a.type, a.community_id)
    ]
    if not matches:
        return
    silenced = await Silenced.load(session, [a for a, _ in matches])
    earning = []
    for a, rule in matches:
        if (why := silenced.because(a)) is None:
            earning.append((a, rule))
            continue
        postings.skip(
            accounts[a.member_id],
            rule.skipped_reason,
            why,
            rule_id=rule.id,
            source_event_id=a.activity_id,
            community_id=a.community_id,
        )
    matches = earning
    used = await _used_today(session, [(a, rule) for a, rule in matches if rule.daily_cap is not None])
    spent: dict[tuple[uuid.UUID, uuid.UUID, date], int] = defaultdict(int)
    earned = []
    for a, rule in matches:
        points = rule.points
        if rule.daily_cap is not None:
            key = (a.member_id, rule.id, a.local_date)
            points = min(points, rule.daily_cap - used.get(key, 0) - spent.get(key, 0))
            if points <= 0:
                continue
            spent[key] += points
        account = accounts[a.member_id]
        entry = postings.credit(
            account,
            points,
            rule.reason,
            expires_at=lot_expiry(a.local_date, a.timezone, rule.expires_in_days),
            rule_id=rule.id,
            # The activity's id is the one its sender knows (POST /v1/events answers it);
            # members emits one `activity.recorded` per activity, so it is as unique.
            source_event_id=a.activity_id,
            community_id=a.community_id,
        )
        postings.emit(points_awarded(entry, account))
        earned.append(leaderboards.Earned(a.community_id, a.member_id, a.local_date, points, a.occurred_at))
    if spent:
        columns = ("member_id", "rule_id", "local_date", "points")
        insert = insert_rows(DAILY, columns)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[DAILY.c.member_id, DAILY.c.rule_id, DAILY.c.local_date],
                set_={"points": DAILY.c.points + insert.excluded.points},
            ),
            row_params(
                columns,
                [{"member_id": m, "rule_id": r, "local_date": d, "points": p} for (m, r, d), p in spent.items()],
            ),
        )
    await leaderboards.add_points(session, earned)


_DAILY_KEY = ("member_id", "rule_id", "local_date")


def _used_statement() -> Any:
    """The points of the daily rows with these exact keys (one array per key column): one
    primary-key probe per key (LIMIT 1 keeps the lookup a subquery run per key, so no plan,
    such as a generic one cached while the table was small, hashes a scan of every row)."""
    keys = array_rows(DAILY, _DAILY_KEY, name="k")
    used = sa.select(DAILY.c.points).where(*(DAILY.c[c] == keys.c[c] for c in _DAILY_KEY)).limit(1).lateral("used")
    return sa.select(*(keys.c[c] for c in _DAILY_KEY), used.c.points).select_from(keys.join(used, sa.true()))


_USED = _used_statement()


async def _used_today(
    session: AsyncSession, capped: Sequence[tuple[ActivityRecorded, Rule]]
) -> dict[tuple[uuid.UUID, uuid.UUID, date], int]:
    """Points capped rules already gave these members on these local days."""
    if not capped:
        return {}
    wanted = {(a.member_id, rule.id, a.local_date) for a, rule in capped}
    params = row_params(_DAILY_KEY, [dict(zip(_DAILY_KEY, key, strict=True)) for key in wanted])
    rows = await session.execute(_USED, params)
    return {(row.member_id, row.rule_id, row.local_date): row.points for row in rows}
