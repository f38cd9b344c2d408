"""Batch ingest's fast path (plain dicts) accepts exactly what `ActivityCreate` accepts, as
the same values: anything it lets through is recorded without the model seeing it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.members.activity.schemas import (
    ACTIVITY_BATCH,
    ActivityCreate,
    ActivityInput,
    activity_input,
    passes_model_checks,
)

MEMBER, COMMUNITY = str(uuid.uuid4()), str(uuid.uuid4())
GOOD = {"member_id": MEMBER, "community_id": COMMUNITY, "type": "check_in"}
SOON = datetime.now(UTC) + timedelta(minutes=1)
LATER = datetime.now(UTC) + timedelta(hours=1)

CASES: list[dict[str, Any]] = [
    GOOD,
    {**GOOD, "id": str(uuid.uuid4()), "occurred_at": "2026-01-02T03:04:05.123456+08:00"},
    {**GOOD, "id": None, "occurred_at": None, "external_id": None},
    {**GOOD, "occurred_at": SOON.isoformat()},
    {**GOOD, "occurred_at": LATER.isoformat()},
    {**GOOD, "occurred_at": "1999-12-31T23:59:59Z"},
    {**GOOD, "occurred_at": "2026-01-02T03:04:05"},
    {**GOOD, "external_id": "wx_1"},
    {"external_id": "wx_1", "community_id": COMMUNITY, "type": "check_in"},
    {"external_id": "-bad", "community_id": COMMUNITY, "type": "check_in"},
    {"community_id": COMMUNITY, "type": "check_in"},
    {**GOOD, "type": "9lives"},
    {**GOOD, "type": "x" * 65},
    {**GOOD, "member_id": "not-a-uuid"},
    {**GOOD, "member_id": MEMBER.replace("-", "")},
    {**GOOD, "extra": 1},
    {**GOOD, "properties": None},
    {**GOOD, "properties": {"channel": "wechat", "n": 1, "ok": True, "none": None, "f": 1.5}},
    {**GOOD, "properties": {"nested": {"list": [1, "two"]}}},
    {**GOOD, "properties": {"v": "x" * 8200}},
    {**GOOD, "properties": {"v": "x" * 8170}},
    {**GOOD, "properties": {"nul": "a\u0000b"}},
    {**GOOD, "properties": []},
    {**GOOD, "properties": {"v": float("nan")}},
    {k: v for k, v in GOOD.items() if k != "type"},
]


@pytest.mark.parametrize("event", CASES)
def test_the_fast_path_accepts_what_the_model_accepts_as_the_same_values(event: dict[str, Any]) -> None:
    body = json.dumps({"events": [event]}).encode()
    try:
        fast: list[ActivityInput] | None = ACTIVITY_BATCH.validate_json(body)["events"]
    except ValidationError:
        fast = None
    if fast is not None and not passes_model_checks(fast):
        fast = None
    try:
        model: ActivityCreate | None = ActivityCreate.model_validate_json(json.dumps(event))
    except ValidationError:
        model = None
    assert (fast is None) == (model is None)
    if fast is not None and model is not None:
        expected = activity_input(model)
        (got,) = fast
        # A key left out is the model's default.
        assert {**expected, **got, "properties": got.get("properties", {})} == expected
