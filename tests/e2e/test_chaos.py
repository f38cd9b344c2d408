"""Chaos on real processes: replicas die mid-traffic, and the counts still add up.

Two replicas each of members and rewards and two gateways (plus one content and one
feedback), one Postgres database per service shared by its replicas, every process
reaching members, rewards and the gateway through a round-robin balancer with failover
(`tests.e2e.cluster`). Through both gateways in turn, a partner sends 5,000 activity
events (client-chosen ids, in batches) and members make 500 redemptions (with
Idempotency-Keys). Mid-way, while the relays are busy, one members replica and one
rewards replica are SIGKILLed. When the system is quiet again the test checks, by counts
(it is not a timed test):

- no event lost, none applied twice: every accepted event id is one activity in members,
  one `activity.recorded` in its outbox and one id in rewards' inbox, and the ledger has
  exactly one earning entry per (event, rule) that earns, none for the others;
- every ledger balances: per member, the sum of entries is the balance, and the balance
  is what the test's own events earned minus what its redemptions cost; none negative;
- redemptions: every 201 is one redemption (a retried request replays the same one),
  there is no other, and the stock taken is the number of redemptions;
- webhooks: each `rewards.points_awarded` and `rewards.redemption_created` message
  reaches each of two endpoints exactly once, with a valid signature.

What "exactly once" means for webhooks: delivery is at least once. A gateway that dies
after the partner answered but before it recorded the answer sends that message again,
with the same `webhook-id`, and partners dedupe by it. Here no gateway is killed, the
receiver answers 200 at once and nothing times out, so no attempt is ever repeated: each
expected `webhook-id` must arrive at each endpoint once, in total (not only once
distinct). The gateways' attempt logs are checked against the receipts too: every request
the receiver got is one logged attempt, and each delivery has exactly one successful
attempt, so a repeat would show whether the gateway knew it was repeating.

The killed members and rewards replicas do make relays post some events twice (a post
cut by the kill is retried; a batch whose outcome was never recorded is claimed again
when its lease ends), but consumers apply an event id once, so those re-posts must
create no second ledger entry and no second webhook message. The balancers count the
event ids relays post through them, to show the re-posts happened.

A request cut by a kill is the client's to retry: event batches are sent again with the
same ids (those already recorded answer as duplicates), redemptions with the same
Idempotency-Key (a redemption that committed replays its 201). A key whose first request
died in flight stays claimed for two minutes (409 `idempotency-key-in-use`); the test
then redeems with a fresh key and checks at the end that the stuck key never completed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks import Webhook

from tests.e2e.cluster import ADMIN_EMAIL, ADMIN_PASSWORD, Cluster, Proc, free_port

pytestmark = pytest.mark.e2e

MEMBERS = 300
EVENTS = 5000
BATCH = 100
BATCH_INTERVAL = 0.5  # seconds between batch starts
REDEMPTIONS = 500
REDEEMERS = 100  # members who redeem, REDEMPTIONS / REDEEMERS each
# Default earning rules without a daily cap: each event earns once per (event, rule).
EARNING = {"event_attended": 10, "invite_accepted": 20}
NOT_EARNING = "chaos_noise"  # unknown types are recorded but earn nothing
TYPE_CYCLE = ("event_attended", "invite_accepted", "event_attended", NOT_EARNING, "invite_accepted")
REWARD_COSTS = (10, 25)
REWARD_STOCK = 400  # per reward: more than its share of the redemptions
WEBHOOK_TYPES = ("rewards.points_awarded", "rewards.redemption_created")
QUIET_TIMEOUT = 150.0

SETTINGS = {
    "QUNYUN_RELAY_INTERVAL_MS": "100",
    "QUNYUN_SCHEDULER_INTERVAL_MS": "200",
    "QUNYUN_RELAY_BATCH_SIZE": "250",
    # A killed relay's claim is taken over after the lease (it must exceed the post timeout).
    "QUNYUN_RELAY_TIMEOUT_SECONDS": "5",
    "QUNYUN_RELAY_LEASE_SECONDS": "8",
    "QUNYUN_RELAY_RETRY_BASE_SECONDS": "0.2",
    "QUNYUN_RELAY_RETRY_MAX_SECONDS": "2",
    "QUNYUN_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1",
    # Generous: a timed-out attempt that the receiver did get would be sent again.
    "QUNYUN_WEBHOOK_TIMEOUT_SECONDS": "30",
    "QUNYUN_WEBHOOK_LEASE_SECONDS": "60",
    "QUNYUN_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": "8",
    # Eight processes on one server: small pools.
    "QUNYUN_DB_POOL_SIZE": "3",
    "QUNYUN_DB_MAX_OVERFLOW": "3",
    "QUNYUN_UPSTREAM_TIMEOUT_SECONDS": "30",
}


# --- the webhook receiver ---------------------------------------------------------------


@dataclass
class Receipt:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Answers 200 to every POST /hooks/<endpoint>, keeping what each endpoint received."""

    port: int = field(default_factory=free_port)
    received: dict[str, list[Receipt]] = field(default_factory=lambda: defaultdict(list))
    _runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        # Verified at the end (signing checks would slow the receiver under load).
        self.received[request.match_info["name"]].append(Receipt(dict(request.headers), await request.read()))
        return web.Response(text="ok")


# --- the cluster --------------------------------------------------------------------------


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(
        tmp_path,
        replicas_per_service={"members": 2, "rewards": 2, "gateway": 2},
        settings=SETTINGS,
    )
    began = time.monotonic()
    await running.create_databases()
    try:
        await running.start()
        print(f"cluster ready in {time.monotonic() - began:.1f} s")
        yield running
    finally:
        began = time.monotonic()
        running.stop()
        print(f"cluster stopped in {time.monotonic() - began:.1f} s; process logs in {tmp_path}:\n{running.logs(15)}")
        await running.drop_databases()


class Databases:
    """Direct SQL reads on the services' databases (the test's own view of the truth)."""

    def __init__(self, cluster: Cluster) -> None:
        self.engines: dict[str, AsyncEngine] = {
            service: create_async_engine(url, poolclass=NullPool) for service, url in cluster.databases.items()
        }

    async def rows(self, service: str, query: str, **params: Any) -> list[Any]:
        async with self.engines[service].connect() as conn:
            return list((await conn.execute(sa.text(query), params)).all())

    async def scalar(self, service: str, query: str, **params: Any) -> Any:
        async with self.engines[service].connect() as conn:
            return await conn.scalar(sa.text(query), params)

    async def dispose(self) -> None:
        for engine in self.engines.values():
            await engine.dispose()


# --- traffic ---------------------------------------------------------------------------


class Gateways:
    """One client per gateway replica; requests alternate between them."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = [httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) for url in urls]
        self._turn = itertools.count()
        self.transport_errors = 0

    def next(self) -> httpx.AsyncClient:
        return self.clients[next(self._turn) % len(self.clients)]

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """The answer from the next gateway, or None when the connection broke."""
        try:
            return await self.next().request(method, path, **kwargs)
        except httpx.TransportError:
            self.transport_errors += 1
            return None

    async def expect(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        """The answer's body, which must have `status`. A 503 (the shared database server
        at its connection limit, say: nothing was done) is retried for a while."""
        for _attempt in range(40):
            answer = await self.request(method, path, **kwargs)
            if answer is None or answer.status_code != 503:
                break
            await asyncio.sleep(0.25)
        assert answer is not None, f"{method} {path}: connection failed"
        assert answer.status_code == status, (method, path, answer.text)
        return answer.json()

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def _is_retryable(answer: httpx.Response | None) -> bool:
    """A cut request (a replica died with it) or a service briefly unreachable."""
    return answer is None or answer.status_code in (502, 503, 504)


@dataclass
class Traffic:
    """What the test sent and what it was told."""

    events: list[dict[str, Any]] = field(default_factory=list)
    event_answers: Counter[str] = field(default_factory=Counter)  # accepted, duplicates, retries
    batches_done: int = 0
    redemptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical redemption -> 201 body
    redemption_answers: Counter[str] = field(default_factory=Counter)
    stuck_keys: list[str] = field(default_factory=list)


def build_events(community_id: str, member_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "member_id": member_ids[n % len(member_ids)],
            "community_id": community_id,
            "type": TYPE_CYCLE[(n // len(member_ids)) % len(TYPE_CYCLE)],
            "properties": {"n": n},
        }
        for n in range(EVENTS)
    ]


def batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), BATCH):
        yield events[start : start + BATCH]


async def send_events(gateways: Gateways, partner: dict[str, str], traffic: Traffic, workers: int = 2) -> None:
    """Every batch until it is answered; batches start at most every BATCH_INTERVAL s,
    about the pace the relays carry them on, so the kills find ingest still going."""
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches(traffic.events):
        queue.put_nowait(batch)
    started = time.monotonic()
    turns = itertools.count()

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            await asyncio.sleep(max(0.0, started + next(turns) * BATCH_INTERVAL - time.monotonic()))
            for _attempt in range(60):
                answer = await gateways.request("POST", "/v1/events/batch", json={"events": batch}, headers=partner)
                if not _is_retryable(answer):
                    break
                traffic.event_answers["retried"] += 1
                await asyncio.sleep(0.25)
            assert answer is not None, "the gateways did not answer"
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["rejected"] == [], body["rejected"][:3]
            traffic.event_answers["accepted"] += body["accepted"]
            traffic.event_answers["duplicates"] += body["duplicates"]
            traffic.batches_done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))


@dataclass
class Redemption:
    name: str  # the logical redemption (several keys if one got stuck)
    member: int
    reward_id: str
    key: str = field(default_factory=lambda: str(uuid.uuid4()))


async def redeem_all(
    gateways: Gateways,
    tokens: list[str],
    reward_ids: list[str],
    traffic: Traffic,
    workers: int = 4,
    timeout: float = 150,
) -> None:
    queue: asyncio.Queue[Redemption] = asyncio.Queue()
    for n in range(REDEMPTIONS):
        queue.put_nowait(Redemption(f"r{n}", n % REDEEMERS, reward_ids[n % len(reward_ids)]))
    deadline = time.monotonic() + timeout

    async def worker() -> None:
        while not queue.empty():
            assert time.monotonic() < deadline, f"redemptions not done in {timeout} s: {traffic.redemption_answers}"
            job = queue.get_nowait()
            answer = await gateways.request(
                "POST",
                "/v1/redemptions",
                json={"reward_id": job.reward_id},
                headers={"Authorization": f"Bearer {tokens[job.member]}", "Idempotency-Key": job.key},
            )
            if answer is not None and answer.status_code == 201:
                assert job.name not in traffic.redemptions or traffic.redemptions[job.name] == answer.json()
                traffic.redemptions[job.name] = answer.json()
                traffic.redemption_answers["replayed" if answer.headers.get("idempotent-replayed") else "201"] += 1
                continue
            kind = _problem_kind(answer)
            traffic.redemption_answers[kind] += 1
            if kind == "idempotency-key-in-use":
                # Its first request died with the replica: the claim holds for 2 minutes.
                traffic.stuck_keys.append(job.key)
                job.key = str(uuid.uuid4())
            elif kind not in ("insufficient-points", "cut"):
                raise AssertionError(f"redemption {job.name}: {answer.status_code if answer else None} {kind}")
            # Not enough points yet (the events are still on their way), or cut: again later.
            await asyncio.sleep(0.3)
            queue.put_nowait(job)

    await asyncio.gather(*(worker() for _ in range(workers)))


def _problem_kind(answer: httpx.Response | None) -> str:
    if _is_retryable(answer):
        return "cut"
    assert answer is not None
    try:
        return str(answer.json()["type"]).rsplit("/", 1)[-1]
    except (ValueError, KeyError):
        return f"HTTP {answer.status_code}"


# --- the test ----------------------------------------------------------------------------


async def test_replicas_killed_mid_traffic_lose_and_double_nothing(cluster: Cluster) -> None:
    started = time.monotonic()
    db = Databases(cluster)
    gateways = Gateways(cluster.public_urls())
    try:
        async with WebhookReceiver() as receiver:
            await _run(cluster, db, gateways, receiver, started)
    finally:
        await gateways.aclose()
        await db.dispose()


async def _run(cluster: Cluster, db: Databases, gateways: Gateways, receiver: WebhookReceiver, started: float) -> None:
    # --- set-up: admin, partner key, community, webhook endpoints, rewards, members ---
    token = await gateways.expect(
        "POST", "/v1/auth/token", 200, data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    key = await gateways.expect(
        "POST",
        "/v1/api-keys",
        201,
        json={"name": "chaos bot", "scopes": ["members:write", "members:token", "events:write", "read"]},
        headers=admin,
    )
    partner = {"X-API-Key": key["key"]}
    community = await gateways.expect("POST", "/v1/communities", 201, json={"name": "Chaos"}, headers=admin)
    endpoints: dict[str, tuple[str, str]] = {}  # name -> (id, secret)
    for name in ("a", "b"):
        endpoint = await gateways.expect(
            "POST",
            "/v1/webhook-endpoints",
            201,
            json={"url": receiver.url(name), "event_types": list(WEBHOOK_TYPES)},
            headers=admin,
        )
        endpoints[name] = (endpoint["id"], endpoint["secret"])
    reward_ids = [
        (
            await gateways.expect(
                "POST",
                "/v1/rewards",
                201,
                json={"name": f"Chaos mug {cost}", "cost": cost, "stock": REWARD_STOCK},
                headers=admin,
            )
        )["id"]
        for cost in REWARD_COSTS
    ]
    limit = asyncio.Semaphore(8)

    async def create_member(n: int) -> str:
        async with limit:
            body = {"external_id": f"chaos-{n}", "display_name": f"Member {n}"}
            member = await gateways.expect("POST", "/v1/members", 201, json=body, headers=partner)
            return str(member["id"])

    member_ids = list(await asyncio.gather(*(create_member(n) for n in range(MEMBERS))))

    async def mint(member_id: str) -> str:
        async with limit:
            answer = await gateways.expect(
                "POST", "/v1/auth/member-token", 200, json={"member_id": member_id}, headers=partner
            )
            return str(answer["access_token"])

    tokens = list(await asyncio.gather(*(mint(member_id) for member_id in member_ids[:REDEEMERS])))
    set_up = time.monotonic() - started

    # --- traffic, and the kills mid-way ---
    traffic = Traffic(events=build_events(community["id"], member_ids))
    load_started = time.monotonic()
    events_task = asyncio.create_task(send_events(gateways, partner, traffic))
    redemptions_task = asyncio.create_task(redeem_all(gateways, tokens, reward_ids, traffic))
    kill_report = await _kill_mid_way(cluster, db, traffic, events_task)
    await events_task
    await redemptions_task
    load_time = time.monotonic() - load_started

    # --- quiet: nothing pending anywhere ---
    await _wait_until_quiet(db, receiver)
    total_time = time.monotonic() - started

    figures = await _check_everything(db, traffic, member_ids, reward_ids, receiver, endpoints)
    figures["balancers"] = await cluster.balancer_stats()
    print(
        json.dumps(
            {
                "set_up_s": round(set_up, 1),
                "load_s": round(load_time, 1),
                "total_s": round(total_time, 1),
                "kill": kill_report,
                "event_answers": dict(traffic.event_answers),
                "redemption_answers": dict(traffic.redemption_answers),
                "stuck_keys": len(traffic.stuck_keys),
                "transport_errors": gateways.transport_errors,
                **figures,
            },
            indent=1,
        )
    )


async def _pending(db: Databases, service: str) -> int:
    return int(await db.scalar(service, "SELECT count(*) FROM outbox_pending"))


async def _kill_mid_way(
    cluster: Cluster, db: Databases, traffic: Traffic, events_task: asyncio.Task[None]
) -> dict[str, Any]:
    """SIGKILL the second members and rewards replicas mid-way: once 40% of the event
    batches are in and 5% of the redemptions are done, while both services' relays have
    events in hand (or soon after, whatever they have)."""
    batches_total = EVENTS // BATCH
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not events_task.done():
        if traffic.batches_done >= batches_total * 0.4 and len(traffic.redemptions) >= REDEMPTIONS // 20:
            break
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 5
    busy: dict[str, int] = {}
    while time.monotonic() < deadline:
        busy = {
            f"{service}_outbox_{status}": int(
                await db.scalar(service, "SELECT count(*) FROM outbox_pending WHERE status = :s", s=status)
            )
            for service in ("members", "rewards")
            for status in ("pending", "in_flight")
        }
        if busy["members_outbox_in_flight"] and busy["rewards_outbox_in_flight"]:
            break
        await asyncio.sleep(0.02)
    victims: list[Proc] = [cluster.replicas["members"][1], cluster.replicas["rewards"][1]]
    for victim in victims:
        cluster.kill(victim)
    return {
        "killed": [v.name for v in victims],
        "after_batches": traffic.batches_done,
        "redeemed_before": len(traffic.redemptions),
        **busy,
    }


async def _wait_until_quiet(db: Databases, receiver: WebhookReceiver) -> None:
    """Until no outbox row is pending, every webhook delivery is settled and the receiver
    has them all (bounded: a stuck row fails the test with what it says)."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = {
            "members_pending": await _pending(db, "members"),
            "rewards_pending": await _pending(db, "rewards"),
            "gateway_pending": await _pending(db, "gateway"),
            "webhooks_unsettled": await db.scalar(
                "gateway", "SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'"
            ),
            "webhooks_expected": await db.scalar("gateway", "SELECT count(*) FROM webhook_deliveries"),
            "webhooks_received": sum(len(got) for got in receiver.received.values()),
        }
        if (
            not any(state[k] for k in ("members_pending", "rewards_pending", "gateway_pending", "webhooks_unsettled"))
            and state["webhooks_received"] >= state["webhooks_expected"]
        ):
            await asyncio.sleep(0.5)  # a late duplicate would show now
            return
        await asyncio.sleep(0.25)
    stuck = {
        service: await db.rows(service, "SELECT subscriber, status, attempts, last_error FROM outbox_pending LIMIT 5")
        for service in ("members", "rewards", "gateway")
    }
    raise AssertionError(f"not quiet within {QUIET_TIMEOUT} s: {state}; pending rows: {stuck}")


async def _check_everything(
    db: Databases,
    traffic: Traffic,
    member_ids: list[str],
    reward_ids: list[str],
    receiver: WebhookReceiver,
    endpoints: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    sent = {uuid.UUID(e["id"]): e for e in traffic.events}
    earning = {event_id for event_id, e in sent.items() if e["type"] in EARNING}

    # Every event the test sent was answered as recorded (accepted or, when a cut batch was
    # sent again, duplicate), and nothing else was recorded.
    assert traffic.event_answers["accepted"] + traffic.event_answers["duplicates"] >= EVENTS
    activities = [row.id for row in await db.rows("members", "SELECT id FROM activities")]
    assert len(activities) == len(set(activities)) == EVENTS
    assert set(activities) == set(sent)

    # One `activity.recorded` per event in members' outbox, and rewards took each once. A
    # batch row holds many (each with its own event id); an event split out of one for a
    # subscriber that refused it has a row of its own with the same id, so ids are distinct.
    published = await db.rows(
        "members",
        "SELECT DISTINCT coalesce(e->>'id', o.id::text) AS event_id,"
        " coalesce(e->'data'->>'activity_id', o.data->>'activity_id') AS activity_id"
        " FROM outbox o LEFT JOIN LATERAL json_array_elements(CASE WHEN o.batch_size IS NOT NULL THEN o.data END)"
        " AS e ON true WHERE o.type = 'activity.recorded'",
    )
    recorded = Counter(uuid.UUID(row.activity_id) for row in published)
    assert set(recorded) == set(sent)
    assert max(recorded.values()) == 1, recorded.most_common(3)
    recorded_ids = {uuid.UUID(row.event_id) for row in published}
    inbox = [row.event_id for row in await db.rows("rewards", "SELECT event_id FROM inbox")]
    assert set(inbox) == recorded_ids
    assert len(inbox) == len(recorded_ids)

    # Exactly one earning entry per earning event (one rule per type), none for the others.
    earned = await db.rows(
        "rewards",
        "SELECT source_event_id, rule_id, reason, delta FROM ledger_entries WHERE reason LIKE 'earned:%'",
    )
    per_event = Counter(row.source_event_id for row in earned)
    assert set(per_event) == earning, (len(per_event), len(earning))
    assert max(per_event.values()) == 1, per_event.most_common(3)
    for row in earned:
        assert (row.reason, row.delta) == (
            f"earned:{sent[row.source_event_id]['type']}",
            EARNING[sent[row.source_event_id]["type"]],
        )

    # Redemptions: every 201 is one redemption, there is no other, the stock matches.
    assert len(traffic.redemptions) == REDEMPTIONS
    answered = {body["id"] for body in traffic.redemptions.values()}
    assert len(answered) == REDEMPTIONS, "two logical redemptions got the same redemption"
    redemptions = await db.rows("rewards", "SELECT id, member_id, reward_id, cost FROM redemptions")
    assert {str(row.id) for row in redemptions} == answered
    assert len(redemptions) == REDEMPTIONS
    stock_left = dict(await db.rows("rewards", "SELECT reward_id, sum(remaining) FROM reward_stock GROUP BY reward_id"))
    taken = Counter(str(row.reward_id) for row in redemptions)
    for reward_id in reward_ids:
        assert REWARD_STOCK - stock_left[uuid.UUID(reward_id)] == taken[reward_id], reward_id
    redemption_entries = await db.scalar(
        "rewards", "SELECT count(*) FROM ledger_entries WHERE reason = 'redemption' AND redemption_id IS NOT NULL"
    )
    assert redemption_entries == REDEMPTIONS
    # A key whose request died with a replica never completed: nothing was redeemed by it.
    if traffic.stuck_keys:
        completed = await db.scalar(
            "rewards",
            "SELECT count(*) FROM idempotency_keys WHERE key = ANY(CAST(:keys AS text[])) AND completed_at IS NOT NULL",
            keys=traffic.stuck_keys,
        )
        assert completed == 0

    # Every ledger balances, no balance is negative, and each is what the test expects.
    unbalanced = await db.rows(
        "rewards",
        "SELECT a.member_id, a.balance, coalesce(sum(e.delta), 0) AS total FROM accounts a "
        "LEFT JOIN ledger_entries e ON e.member_id = a.member_id "
        "GROUP BY a.member_id, a.balance HAVING a.balance <> coalesce(sum(e.delta), 0)",
    )
    assert unbalanced == []
    assert await db.scalar("rewards", "SELECT count(*) FROM accounts WHERE balance < 0") == 0
    expected: Counter[uuid.UUID] = Counter()
    for e in traffic.events:
        expected[uuid.UUID(e["member_id"])] += EARNING.get(e["type"], 0)
    for row in redemptions:
        expected[row.member_id] -= row.cost
    balances = dict(await db.rows("rewards", "SELECT member_id, balance FROM accounts"))
    assert {m: balances.get(m, 0) for m in expected} == dict(expected)
    assert len(balances) == len(member_ids)

    # Webhooks: each expected message at each endpoint exactly once, signed. An earning
    # batch's awards are one batch row (each event with its own id); an event split out of
    # one for a subscriber that refused it has a row of its own with the same id.
    outbox = await db.rows(
        "rewards",
        "SELECT DISTINCT coalesce(e->>'id', o.id::text) AS id, o.type FROM outbox o"
        " LEFT JOIN LATERAL json_array_elements(CASE WHEN o.batch_size IS NOT NULL THEN o.data END) AS e ON true"
        " WHERE o.type = ANY(CAST(:types AS text[]))",
        types=list(WEBHOOK_TYPES),
    )
    by_type = Counter(row.type for row in outbox)
    assert by_type["rewards.points_awarded"] == len(earning)
    assert by_type["rewards.redemption_created"] == REDEMPTIONS
    expected_ids = {f"msg_{uuid.UUID(row.id).hex}" for row in outbox}
    # What the gateways logged: attempts per (endpoint, webhook-id), and how many succeeded.
    logged = {
        (str(row.endpoint_id), f"msg_{row.message_id.hex}"): (row.attempts, row.succeeded)
        for row in await db.rows(
            "gateway",
            "SELECT d.endpoint_id, d.message_id, count(a.id) AS attempts, "
            "count(a.id) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS succeeded "
            "FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id "
            "GROUP BY d.endpoint_id, d.message_id",
        )
    }
    duplicates: dict[str, int] = {}
    failed_attempts: dict[str, int] = {}
    for name, (endpoint_id, secret) in endpoints.items():
        got = receiver.received[name]
        ids = Counter(receipt.headers["webhook-id"] for receipt in got)
        duplicates[name] = sum(n - 1 for n in ids.values())
        assert set(ids) == expected_ids, (name, len(set(ids) - expected_ids), len(expected_ids - set(ids)))
        # Every request the receiver got is an attempt the gateway logged, one succeeded.
        mine = {webhook: counts for (endpoint, webhook), counts in logged.items() if endpoint == endpoint_id}
        assert set(mine) == expected_ids
        wrong = {webhook: (ids[webhook], counts) for webhook, counts in mine.items() if counts != (ids[webhook], 1)}
        assert not wrong, f"{name}: receipts vs (attempts logged, succeeded): {list(wrong.items())[:5]}"
        failed_attempts[name] = sum(attempts - 1 for attempts, _ in mine.values())
        signer = Webhook(secret)
        for receipt in got:
            message = signer.verify(receipt.body, receipt.headers)
            assert message["type"] in WEBHOOK_TYPES
    # No gateway died and the receiver answers at once: one attempt, one receipt each. (A
    # repeat would be legitimate only after an attempt the gateway saw fail, e.g. a timeout
    # on a starved machine; the check above pairs each repeat with such a logged failure.)
    assert duplicates == failed_attempts, (duplicates, failed_attempts)
    assert duplicates == dict.fromkeys(endpoints, 0), f"webhooks delivered twice: {duplicates}"

    return {
        "events": len(activities),
        "earning_entries": len(earned),
        "redemptions": len(redemptions),
        "webhook_messages": len(expected_ids),
        "webhook_receipts": {name: len(got) for name, got in receiver.received.items()},
        "webhook_duplicates": duplicates,
        "webhook_failed_attempts": failed_attempts,
    }
