"""Event contracts: strict for producers, tolerant for consumers; routing and the start-up check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.common.app import create_service_app
from services.common.contracts import (
    EVENT_TYPES,
    PUBLISHED_EVENT_TYPES,
    SUBSCRIPTIONS,
    EventModel,
    SubscriptionMismatch,
    UnknownEventType,
    contract_for,
    subscribers_for,
)
from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.members import MemberErased
from services.common.contracts.rewards import LevelChanged, RedemptionCancelled, RedemptionCreated
from services.common.events import Event, EventEnvelope, EventHandlers, parse_event
from services.feedback.db import kit_tables
from services.members.db import kit_tables as members_kit
from services.rewards.events import EVENT_HANDLERS as REWARDS_HANDLERS
from services.rewards.events import apply_new_events
from tests.common.kit import ThingCreated
from tests.system import System
from tests.system import test_settings as settings_for

# Every event type API.md names, plus what rewards emits beyond them.
API_EVENT_TYPES = {
    *("member.created", "member.updated", "member.joined_community", "member.left_community", "member.erased"),
    "activity.recorded",
    *(f"content.post_{s}" for s in ("submitted", "approved", "rejected", "scheduled", "published")),
    *(f"rewards.{s}" for s in ("points_awarded", "level_changed", "badge_awarded", "redemption_created")),
    "rewards.redemption_cancelled",
    *(f"feedback.ticket_{s}" for s in ("created", "status_changed", "commented")),
    *(f"feedback.{s}" for s in ("sla_breached", "csat_requested", "csat_received")),
    *(f"feedback.suggestion_{s}" for s in ("created", "status_changed", "completed")),
    *(f"moderation.{s}" for s in ("report_created", "report_resolved", "sanction_applied", "sanction_lifted")),
    "webhook.test",
    "webhook.endpoint_disabled",
}


def test_every_event_type_of_the_api_has_a_published_contract() -> None:
    assert set(PUBLISHED_EVENT_TYPES) == API_EVENT_TYPES | {
        "rewards.points_deducted",
        "rewards.points_expired",
        "content.post_cancelled",
        "content.poll_voted",
        # Erasure confirmations (GET /v1/members/{id}/erasure).
        "content.member_erased",
        "rewards.member_erased",
        "feedback.member_erased",
    }
    assert "thing.created" in EVENT_TYPES  # test contracts register too...
    assert "thing.created" not in PUBLISHED_EVENT_TYPES  # ...but are never published


@pytest.mark.parametrize("event_type", sorted(PUBLISHED_EVENT_TYPES))
def test_each_contract_is_complete_and_its_example_is_valid(event_type: str) -> None:
    contract = contract_for(event_type)
    assert contract.event_type == event_type
    assert contract.schema_version >= 1
    assert contract.summary()
    assert not contract.summary().startswith(event_type)
    example = contract.example()
    assert contract.model_validate(example).model_dump(mode="json") == example  # strict, and round-trips
    assert set(contract.model_json_schema()["properties"]) == set(example)  # the example shows every field


def test_the_renamed_fields_bump_the_version() -> None:
    versions = {model.schema_version for model in (LevelChanged, RedemptionCreated, RedemptionCancelled)}
    assert versions == {2}
    assert {"level", "previous_level"} <= set(LevelChanged.model_fields)
    assert not {"from_level", "to_level"} & set(LevelChanged.model_fields)
    assert "redemption_id" in RedemptionCreated.model_fields
    assert "id" not in RedemptionCreated.model_fields


def test_producers_are_held_to_the_contract() -> None:
    member_id = uuid.uuid4()
    with pytest.raises(ValidationError, match="extra"):
        MemberErased(member_id=member_id, erased_at=datetime.now(UTC), reason="asked")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="timezone"):
        MemberErased(member_id=member_id, erased_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="uuid"):
        MemberErased.model_validate({"member_id": "not-an-id", "erased_at": "2026-01-01T00:00:00Z"})
    example = ActivityRecorded.example() | {"timezone": "Mars/Olympus"}
    with pytest.raises(ValidationError, match="unknown time zone"):
        ActivityRecorded.model_validate(example)


def test_consumers_ignore_fields_they_do_not_know_but_not_missing_ones() -> None:
    newer = MemberErased.example() | {"added_in_a_later_version": True}
    assert MemberErased.parse(newer).member_id == uuid.UUID(MemberErased.example()["member_id"])
    envelope = EventEnvelope(
        id=uuid.uuid4(), type="member.erased", source="members", occurred_at=datetime.now(UTC), data=newer
    )
    event: Event[EventModel] = parse_event(envelope)
    assert isinstance(event.data, MemberErased)
    with pytest.raises(ValidationError):
        parse_event(envelope.model_copy(update={"data": {"erased_at": "2026-01-01T00:00:00Z"}}))
    with pytest.raises(UnknownEventType):
        parse_event(envelope.model_copy(update={"type": "member.teleported"}))


def test_a_second_contract_for_one_type_is_refused() -> None:
    with pytest.raises(TypeError, match="two contracts"):

        class Impostor(EventModel):  # pyright: ignore[reportUnusedClass]
            event_type = "member.erased"


def test_routing_follows_the_subscription_table() -> None:
    assert subscribers_for(SUBSCRIPTIONS, "members", "activity.recorded") == ["gateway", "rewards", "content"]
    assert subscribers_for(SUBSCRIPTIONS, "members", "member.erased") == ["gateway", "rewards", "content", "feedback"]
    assert subscribers_for(SUBSCRIPTIONS, "members", "member.created") == ["gateway", "content"]
    assert subscribers_for(SUBSCRIPTIONS, "content", "content.poll_voted") == ["gateway", "members"]
    assert subscribers_for(SUBSCRIPTIONS, "rewards", "rewards.level_changed") == ["gateway", "feedback"]
    assert subscribers_for(SUBSCRIPTIONS, "feedback", "feedback.suggestion_completed") == ["gateway", "rewards"]
    assert subscribers_for(SUBSCRIPTIONS, "rewards", "rewards.points_awarded") == ["gateway"]
    assert subscribers_for(SUBSCRIPTIONS, "gateway", "webhook.test") == []  # never to the source


def test_every_service_app_starts_with_its_declared_subscriptions() -> None:
    from services.content.app import create_app as content_app
    from services.feedback.app import create_app as feedback_app
    from services.gateway.app import create_app as gateway_app
    from services.members.app import create_app as members_app
    from services.rewards.app import create_app as rewards_app

    settings = settings_for({})
    for create_app in (gateway_app, members_app, content_app, rewards_app, feedback_app):
        create_app(settings)  # raises SubscriptionMismatch if handlers and table disagree


def test_handlers_that_disagree_with_the_subscription_fail_at_start_up() -> None:
    settings = settings_for({})
    too_few: EventHandlers = {ActivityRecorded: REWARDS_HANDLERS[ActivityRecorded]}
    missing = (
        r"\['feedback.suggestion_completed', 'member.erased', 'moderation.sanction_applied', "
        r"'moderation.sanction_lifted'\]"
    )
    with pytest.raises(SubscriptionMismatch, match=f"no handler for {missing}"):
        create_service_app("rewards", settings, kit_tables=kit_tables, routers=[], event_handlers=too_few)
    too_many: EventHandlers = {**REWARDS_HANDLERS, ThingCreated: REWARDS_HANDLERS[ActivityRecorded]}
    with pytest.raises(SubscriptionMismatch, match=r"nobody routes to it: \['thing.created'\]"):
        create_service_app("rewards", settings, kit_tables=kit_tables, routers=[], event_handlers=too_many)
    with pytest.raises(SubscriptionMismatch, match="nobody routes"):
        create_service_app("content", settings, kit_tables=kit_tables, routers=[], event_handlers=REWARDS_HANDLERS)
    with pytest.raises(SubscriptionMismatch, match="batch handler"):
        create_service_app("gateway", settings, kit_tables=kit_tables, routers=[])  # ALL needs a batch handler
    with pytest.raises(SubscriptionMismatch, match="subscribes to no event type"):
        create_service_app(
            "content",
            settings,
            kit_tables=kit_tables,
            routers=[],
            batch_handler=apply_new_events,
            subscriptions={**SUBSCRIPTIONS, "content": frozenset()},
        )


async def test_the_suite_checks_every_event_written_to_an_outbox(system: System) -> None:
    """What the `system` fixture runs after each test: a row that breaks its contract is named."""
    outbox = members_kit.outbox
    row = {"id": uuid.uuid4(), "type": "member.erased", "occurred_at": datetime.now(UTC), "data": {"member_id": "x"}}
    async with system.state("members").db.engine.begin() as conn:
        await conn.execute(outbox.insert().values(**row))
    (violation,) = await system.contract_violations()
    assert "members wrote member.erased" in violation
    assert "member_id" in violation
    assert "erased_at" in violation
    async with system.state("members").db.engine.begin() as conn:
        await conn.execute(outbox.delete())  # or this test would fail at teardown, as it should
    assert await system.contract_violations() == []
