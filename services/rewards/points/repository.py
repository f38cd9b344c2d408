"""The ledger's SQL: the statements `Postings` writes with, and the debit as one statement.

A debit is data-modifying CTEs (`DebitSql`): lock the member's account, check it, write the
entry, take the points from the lots that expire first, record which lots gave them, and
update the account, in one round trip. Another domain that debits as part of its own
statement (a redemption) composes these CTEs through `DebitSql`'s named arguments and
reads the outcome from the CTEs it documents; `ledger.debit` is the same statement alone.

One statement sees one snapshot, taken before it waits for the account lock. Every change
to a member's lots, entries or redemptions is made while holding that lock and updates the
account row, so the snapshot is current exactly when the locked row is the version the
snapshot sees (`fresh`). When it is not (another transaction committed in between), the
statement writes nothing and says `stale`; run again, it holds the lock already and takes
a new snapshot, which is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.db import table_of
from services.rewards.points.models import Account, LedgerEntry, Lot, LotConsumption
from services.rewards.sql import array_rows, insert_rows

ACCOUNTS = table_of(Account)
ENTRIES = table_of(LedgerEntry)
LOTS = table_of(Lot)
CONSUMPTIONS = table_of(LotConsumption)

# Entry columns that say what an entry is for (one of them per debit).
SOURCE_COLUMNS = ("redemption_id", "adjustment_id")


@dataclass(frozen=True)
class DebitSql:
    """A debit inside a statement. Each field is a SQL expression: a `$n` parameter, or a
    column of a CTE the caller defines before the ledger's.

    The caller's statement holds, in this order: its own CTEs, `account_cte()`, its CTEs that
    decide, one of them named `gate` (below), then `debit_ctes()`. They define:

    - `ledger_account (member_id, balance, last_seq, erased_at, fresh)`: the account,
      locked; no row if the member has none, or `lock_when` is false.
    - `ledger_debit (member_id, points, balance_after, seq)`: one row when the debit is done.
    - `ledger_take (id, points)`: what each lot gave, soonest expiry first.

    `gate` is the caller's CTE with one column, `points`, and one row exactly when the debit
    must happen (never when `stale`, `erased` or `short(points)` holds).
    """

    member_id: str
    entry_id: str
    reason: str
    now: str
    source_column: str
    source_id: str
    lock_when: str = "true"
    gate: str = "ledger_gate"

    def __post_init__(self) -> None:
        if self.source_column not in SOURCE_COLUMNS:
            raise ValueError(f"an entry's source is one of {SOURCE_COLUMNS}")

    # Conditions over `ledger_account AS la` (joined LEFT: `la` may be NULL), for the
    # caller's verdict: each refuses the debit.
    stale = "NOT coalesce(la.fresh, true)"
    erased = "la.erased_at IS NOT NULL"

    def short(self, points: str) -> str:
        """The balance does not cover `points` (a member without an account has 0)."""
        return f"coalesce(la.balance, 0) < {points}"

    def account_cte(self) -> str:
        # `fresh`: the locked row (after any wait, its latest version) is the version this
        # statement's snapshot sees.
        return f"""ledger_account AS (
    SELECT a.member_id, a.balance, a.last_seq, a.erased_at,
        a.ctid = (SELECT s.ctid FROM accounts s WHERE s.member_id = {self.member_id}) AS fresh
    FROM accounts a
    WHERE a.member_id = {self.member_id} AND {self.lock_when}
    FOR UPDATE OF a
)"""

    def debit_ctes(self) -> str:
        return f"""ledger_debit AS (
    SELECT la.member_id, g.points, la.balance - g.points AS balance_after, la.last_seq + 1 AS seq
    FROM ledger_account la CROSS JOIN {self.gate} g
),
ledger_spend AS (
    SELECT l.id, l.remaining, d.points AS needed,
        sum(l.remaining) OVER (ORDER BY l.expires_at, l.created_at ROWS UNBOUNDED PRECEDING) - l.remaining AS before
    FROM lots l JOIN ledger_debit d ON l.member_id = d.member_id
    WHERE l.remaining > 0
),
ledger_take AS (
    SELECT id, least(remaining, needed - before) AS points FROM ledger_spend WHERE before < needed
),
ledger_lots AS (
    UPDATE lots SET remaining = lots.remaining - t.points FROM ledger_take t WHERE lots.id = t.id
),
ledger_consumptions AS (
    INSERT INTO lot_consumptions (entry_id, lot_id, points) SELECT {self.entry_id}, t.id, t.points FROM ledger_take t
),
ledger_entry AS (
    INSERT INTO ledger_entries (id, member_id, seq, delta, balance_after, reason, {self.source_column}, created_at)
    SELECT {self.entry_id}, d.member_id, d.seq, -d.points, d.balance_after, {self.reason}, {self.source_id}, {self.now}
    FROM ledger_debit d
),
ledger_account_change AS (
    UPDATE accounts SET balance = d.balance_after, last_seq = d.seq, updated_at = {self.now}
    FROM ledger_debit d WHERE accounts.member_id = d.member_id
)"""

    # The outcome columns a statement's final SELECT adds: the entry's seq and balance
    # after (NULL when refused), and the points the lots gave (the ledger's invariant
    # says they cover the debit; anything else is a bug, see `ledger.debit`).
    outcome = (
        "(SELECT d.seq FROM ledger_debit d) AS seq, (SELECT d.balance_after FROM ledger_debit d) AS balance_after, "
        "(SELECT sum(t.points) FROM ledger_take t) AS taken"
    )


def debit_statement(source_column: str) -> str:
    """`ledger.debit` alone: $1 member, $2 points, $3 entry id, $4 reason, $5 source id, $6 now."""
    sql = DebitSql(
        member_id="$1::uuid",
        entry_id="$3::uuid",
        reason="$4::text",
        now="$6::timestamptz",
        source_column=source_column,
        source_id="$5::uuid",
    )
    return f"""WITH {sql.account_cte()},
ledger_gate AS (
    SELECT $2::bigint AS points FROM ledger_account la
    WHERE NOT ({sql.stale}) AND NOT ({sql.erased}) AND NOT ({sql.short("$2::bigint")})
),
{sql.debit_ctes()}
SELECT la.balance, ({sql.stale}) AS stale, ({sql.erased}) AS erased, {sql.outcome}
FROM (SELECT 1) AS one LEFT JOIN ledger_account la ON true"""


DEBIT_STATEMENTS = {column: debit_statement(column) for column in SOURCE_COLUMNS}


# --- locking accounts --------------------------------------------------------------------------

ACCOUNT_STATE_COLUMNS = (
    "member_id",
    "balance",
    "lifetime",
    "last_seq",
    "level_name",
    "streak_days",
    "streak_last_date",
    "timezone",
    "erased_at",
)
_STATE = ", ".join(ACCOUNT_STATE_COLUMNS)


def _locked(skip_locked: bool) -> str:
    # One primary-key probe per id, in the array's order (the caller's lock order): the
    # locking subquery is never flattened into a join, so no plan (a generic one cached while
    # the table was small) turns it into a scan of every account tested against the array.
    skip = " SKIP LOCKED" if skip_locked else ""
    return (
        f"SELECT a.* FROM unnest($1::uuid[]) AS wanted(member_id) CROSS JOIN LATERAL"
        f" (SELECT {_STATE} FROM accounts WHERE accounts.member_id = wanted.member_id FOR UPDATE{skip}) AS a"
    )


# $1: member ids in lock order. Their accounts, locked; ids without one are left out.
LOCK_ACCOUNTS = {skip: _locked(skip) for skip in (False, True)}

# $1: member ids in lock order, $2: now. Creates the accounts that do not exist yet (not
# locking the others). An id another transaction is inserting makes this wait for it to
# end, so once this is done every account of $1 is committed or this transaction's own,
# and `LOCK_ACCOUNTS` run next (a new snapshot) sees them all and takes every lock in id
# order. Locking first and creating afterwards would lock an account committed meanwhile
# out of order, after ids above it: two batches could then wait for each other.
CREATE_MISSING_ACCOUNTS = """INSERT INTO accounts
    (member_id, balance, lifetime, last_seq, streak_days, created_at, updated_at)
SELECT wanted.member_id, 0, 0, 0, 0, $2::timestamptz, $2::timestamptz
FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted(member_id, position)
WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE accounts.member_id = wanted.member_id)
ORDER BY wanted.position
ON CONFLICT DO NOTHING"""


# --- the statements `Postings` writes a transaction's batch with ---------------------------------

ENTRY_COLUMNS = (
    "id",
    "member_id",
    "seq",
    "delta",
    "balance_after",
    "reason",
    "rule_id",
    "source_event_id",
    "community_id",
    "redemption_id",
    "adjustment_id",
    "lot_id",
    "skipped_because",
    "created_at",
)
LOT_COLUMNS = ("id", "member_id", "expires_at", "points", "remaining", "created_at")
# What a posting writes back to an account: its locked state, less erasure (never changed here).
ACCOUNT_UPDATE_COLUMNS = tuple(name for name in ACCOUNT_STATE_COLUMNS if name != "erased_at")
CONSUMPTION_COLUMNS = ("entry_id", "lot_id", "points")


def _upsert_lots() -> Any:
    insert = insert_rows(LOTS, LOT_COLUMNS)
    return insert.on_conflict_do_update(
        index_elements=[LOTS.c.member_id, LOTS.c.expires_at],
        set_={
            "points": LOTS.c.points + insert.excluded.points,
            "remaining": LOTS.c.remaining + insert.excluded.remaining,
        },
    )


def _change_lots() -> Any:
    values = array_rows(LOTS, ("id", "remaining"))
    return LOTS.update().where(LOTS.c.id == values.c.id).values(remaining=LOTS.c.remaining + values.c.remaining)


def _write_accounts() -> Any:
    values = array_rows(ACCOUNTS, ACCOUNT_UPDATE_COLUMNS)
    updated_at = sa.bindparam("p_updated_at", type_=ACCOUNTS.c.updated_at.type)
    return (
        ACCOUNTS.update()
        .where(ACCOUNTS.c.member_id == values.c.member_id)
        .values({name: values.c[name] for name in ACCOUNT_UPDATE_COLUMNS[1:]} | {"updated_at": updated_at})
    )


def _unnest(table: sa.Table, columns: Sequence[str], prefix: str) -> Any:
    """`array_rows` with its own parameter names, so several can share one statement."""
    return array_rows(table, columns, name=f"{prefix}_rows", prefix=prefix)


def _batch_write() -> Any:
    """Entries, lot changes, consumptions and account updates of a batch without new lots
    (expiry, 0-point skips) as data-modifying CTEs of one statement (no table is written twice, so
    none can see or miss another's rows). Parameters: `e_*`, `l_*`, `c_*`, `u_*` column
    arrays and `p_updated_at` (see `Postings.flush`)."""
    entries = _unnest(ENTRIES, ENTRY_COLUMNS, "e")
    lots = _unnest(LOTS, ("id", "remaining"), "l")
    consumptions = _unnest(CONSUMPTIONS, CONSUMPTION_COLUMNS, "c")
    accounts = _unnest(ACCOUNTS, ACCOUNT_UPDATE_COLUMNS, "u")
    updated_at = sa.bindparam("p_updated_at", type_=ACCOUNTS.c.updated_at.type)
    return sa.select(sa.null()).add_cte(
        postgresql.insert(ENTRIES)
        .from_select(list(ENTRY_COLUMNS), sa.select(*(entries.c[c] for c in ENTRY_COLUMNS)))
        .cte("new_entries"),
        LOTS.update()
        .where(LOTS.c.id == lots.c.id)
        .values(remaining=LOTS.c.remaining + lots.c.remaining)
        .cte("lot_changes"),
        postgresql.insert(CONSUMPTIONS)
        .from_select(list(CONSUMPTION_COLUMNS), sa.select(*(consumptions.c[c] for c in CONSUMPTION_COLUMNS)))
        .cte("new_consumptions"),
        ACCOUNTS.update()
        .where(ACCOUNTS.c.member_id == accounts.c.member_id)
        .values({name: accounts.c[name] for name in ACCOUNT_UPDATE_COLUMNS[1:]} | {"updated_at": updated_at})
        .cte("account_changes"),
    )


# Every ledger write runs these, so they are built once (SQLAlchemy memoizes their cache keys).
INSERT_ENTRIES = insert_rows(ENTRIES, ENTRY_COLUMNS)
UPSERT_LOTS = _upsert_lots()
INSERT_CONSUMPTIONS = insert_rows(CONSUMPTIONS, CONSUMPTION_COLUMNS)
CHANGE_LOTS = _change_lots()
WRITE_ACCOUNTS = _write_accounts()
BATCH_WRITE = _batch_write()


def refund_statement(source_column: str) -> str:
    """Give a debit's points back to the lots they came from, as one statement:
    $1 member, $2 the debit's entry id, $3 new entry id, $4 reason, $5 source id, $6 now.

    No `fresh` check is needed: the entry's consumptions never change, lots take the points
    back with an increment, and the account values come from the locked (latest) row."""
    if source_column not in SOURCE_COLUMNS:
        raise ValueError(f"an entry's source is one of {SOURCE_COLUMNS}")
    return f"""WITH ledger_account AS (
    SELECT a.member_id, a.balance, a.last_seq FROM accounts a WHERE a.member_id = $1::uuid FOR UPDATE OF a
),
taken AS (SELECT c.lot_id, c.points FROM lot_consumptions c WHERE c.entry_id = $2::uuid),
refund AS (
    SELECT la.member_id, t.points, la.balance + t.points AS balance_after, la.last_seq + 1 AS seq
    FROM ledger_account la CROSS JOIN (SELECT sum(points) AS points FROM taken) t
    WHERE t.points > 0
),
lots_back AS (
    UPDATE lots SET remaining = lots.remaining + t.points FROM taken t, refund r WHERE lots.id = t.lot_id
),
new_entry AS (
    INSERT INTO ledger_entries (id, member_id, seq, delta, balance_after, reason, {source_column}, created_at)
    SELECT $3::uuid, r.member_id, r.seq, r.points, r.balance_after, $4::text, $5::uuid, $6::timestamptz FROM refund r
),
account_change AS (
    UPDATE accounts SET balance = r.balance_after, last_seq = r.seq, updated_at = $6::timestamptz
    FROM refund r WHERE accounts.member_id = r.member_id
)
SELECT r.seq, r.points, r.balance_after FROM refund r"""


REFUND_STATEMENTS = {column: refund_statement(column) for column in SOURCE_COLUMNS}
