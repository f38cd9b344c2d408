"""The catalog's SQL: rewards with their units left, stock buckets, and a redemption as one
statement.

A redemption is one statement (`REDEEM_CTES` + the event's CTEs + `REDEEM_OUTCOME`): read
the reward and whether a bucket has a unit left, lock the member's account (only when the reward exists),
decide (reward window, stock, per-member limit, then the ledger's refusals), take a unit
from a random stock bucket that no other transaction holds (`FOR UPDATE SKIP LOCKED`), and
only then debit the points through the ledger's CTEs (`ledger.DebitSql`), insert the
redemption and its event. The bucket is locked after the account (its subquery reads
`allowed`, which waits for the account lock), so two redemptions never take the two locks
in opposite orders. The statement writes all of it or nothing, so it needs no transaction
of its own; if every bucket with units was held it writes nothing and says so, and the
caller waits for a bucket with `WAIT_FOR_UNIT` in a transaction, then runs it again
with the unit taken.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.common.db import table_of
from services.rewards.catalog.models import Redemption, Reward, RewardStock
from services.rewards.points import ledger

REWARDS = table_of(Reward)
REDEMPTIONS = table_of(Redemption)
STOCK = table_of(RewardStock)

# Units left: the sum over the reward's buckets, NULL (unlimited) when it has none.
STOCK_LEFT = (
    sa.select(sa.func.sum(STOCK.c.remaining)).where(STOCK.c.reward_id == REWARDS.c.id).scalar_subquery().label("stock")
)
REWARD_BY_ID = sa.select(REWARDS, STOCK_LEFT).where(REWARDS.c.id == sa.bindparam("reward_id"))


def _wait_for_unit() -> Any:
    bucket = (
        sa.select(STOCK.c.bucket)
        .where(STOCK.c.reward_id == sa.bindparam("for_reward"), STOCK.c.remaining > 0)
        # In bucket order, so two waiters walking past buckets emptied meanwhile (which stay
        # locked by whoever locked them) never wait for each other in opposite orders.
        .order_by(STOCK.c.bucket)
        .limit(1)
        .with_for_update()
        .scalar_subquery()
    )
    return (
        STOCK.update()
        .where(STOCK.c.reward_id == sa.bindparam("for_reward"), STOCK.c.bucket == bucket, STOCK.c.remaining > 0)
        .values(remaining=STOCK.c.remaining - 1)
        .returning(STOCK.c.bucket)
    )


# Take one unit, waiting for a bucket that has one (the redemption statement itself takes
# a random free one, skipping held buckets).
WAIT_FOR_UNIT = _wait_for_unit()

_DEBIT = ledger.DebitSql(
    member_id="$1::uuid",
    entry_id="$5::uuid",
    reason="'redemption'",
    now="$3::timestamptz",
    source_column="redemption_id",
    source_id="$4::uuid",
    lock_when="EXISTS (SELECT FROM reward)",
    gate="go",
)

# $1 member, $2 reward, $3 now, $4 redemption id, $5 entry id, $6 the unit is taken already
# (by `WAIT_FOR_UNIT` after an earlier run found every bucket held). The event's CTEs go
# between `REDEEM_CTES` and `REDEEM_OUTCOME` (their parameters from $7, written only
# through `go`). `refusal`: the first that applies, in the order they are answered; NULL
# and `done` false when every bucket with units was held (nothing written).
# `in_stock`: NULL when the reward is unlimited (no buckets). Asked with EXISTS, not summed:
# the answer stops at the first bucket with a unit instead of reading every bucket (each
# one's chain of versions, which the redemptions keep rewriting).
REDEEM_CTES = f"""WITH reward AS (
    SELECT r.cost, r.per_member_limit, r.active_from, r.active_to, CASE
        WHEN EXISTS (SELECT FROM reward_stock s WHERE s.reward_id = r.id AND s.remaining > 0) THEN true
        WHEN EXISTS (SELECT FROM reward_stock s WHERE s.reward_id = r.id) THEN false
    END AS in_stock
    FROM rewards r WHERE r.id = $2::uuid
),
{_DEBIT.account_cte()},
verdict AS (
    SELECT reward.cost, reward.in_stock, reward.per_member_limit, la.balance, CASE
        WHEN {_DEBIT.stale} THEN 'stale'
        WHEN NOT ((reward.active_from IS NULL OR reward.active_from <= $3::timestamptz)
            AND (reward.active_to IS NULL OR $3::timestamptz < reward.active_to)) THEN 'reward-unavailable'
        WHEN NOT reward.in_stock AND NOT $6::boolean THEN 'out-of-stock'
        WHEN {_DEBIT.erased} THEN 'member-erased'
        WHEN reward.per_member_limit IS NOT NULL AND reward.per_member_limit <= (
            SELECT count(*) FROM redemptions d
            WHERE d.member_id = $1::uuid AND d.reward_id = $2::uuid AND d.status <> 'cancelled'
        ) THEN 'limit-reached'
        WHEN {_DEBIT.short("reward.cost")} THEN 'insufficient-points'
    END AS refusal
    FROM reward LEFT JOIN ledger_account la ON true
),
allowed AS (SELECT v.cost AS points, v.in_stock FROM verdict v WHERE v.refusal IS NULL),
unit AS (
    UPDATE reward_stock s SET remaining = s.remaining - 1
    WHERE s.reward_id = $2::uuid AND s.remaining > 0 AND s.bucket = (
        SELECT b.bucket FROM reward_stock b CROSS JOIN allowed
        WHERE b.reward_id = $2::uuid AND b.remaining > 0 AND NOT $6::boolean
        ORDER BY random() LIMIT 1
        FOR UPDATE OF b SKIP LOCKED
    )
    RETURNING s.bucket
),
go AS (
    SELECT a.points FROM allowed a WHERE a.in_stock IS NULL OR $6::boolean OR EXISTS (SELECT FROM unit)
),
{_DEBIT.debit_ctes()},
new_redemption AS (
    INSERT INTO redemptions (id, member_id, reward_id, cost, status, entry_id, created_at)
    SELECT $4::uuid, $1::uuid, $2::uuid, go.points, 'pending', $5::uuid, $3::timestamptz FROM go
),"""
REDEEM_EVENT_GATE = "go"
# The event's fields only the statement knows: the cost read with the reward, the balance after.
REDEEM_EVENT_COMPUTED = {"cost": "go.points", "balance": "(SELECT d.balance_after FROM ledger_debit d)"}
REDEEM_EVENT_FIRST = 7
REDEEM_OUTCOME = f"""
SELECT v.refusal, v.cost, v.per_member_limit, v.balance,
    v.refusal = 'stale' AS stale, v.refusal = 'member-erased' AS erased,
    EXISTS (SELECT FROM go) AS done, {_DEBIT.outcome}
FROM verdict v"""


def _return_unit(skip_locked: bool) -> Any:
    bucket = (
        sa.select(STOCK.c.bucket)
        .where(STOCK.c.reward_id == sa.bindparam("for_reward"))
        .order_by(STOCK.c.remaining, STOCK.c.bucket)
        .limit(1)
        .with_for_update(skip_locked=skip_locked)
        .scalar_subquery()
    )
    return (
        STOCK.update()
        .where(STOCK.c.reward_id == sa.bindparam("for_reward"), STOCK.c.bucket == bucket)
        .values(remaining=STOCK.c.remaining + 1)
        .returning(STOCK.c.bucket)
    )


# Put one unit back into the emptiest bucket that nobody holds, or wait for one.
RETURN_UNIT = {skip_locked: _return_unit(skip_locked) for skip_locked in (True, False)}
