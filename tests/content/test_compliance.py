# ruff: noqa: RUF001  (Chinese text is written with full-width punctuation)
"""The compliance check through the gateway: flags stored at submit and shown on the post,
a flagged promotion approved only with the reviewer's recorded override, the check on its
own (a post, or a text), the forbidden-terms list and who may use each."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.content.factories import OPERATOR, PROBLEMS, REVIEWER, content_events, create_community
from tests.system import System, member, staff

VALID_ID = "11010519491231002X"
BAD_CHECKSUM = "110105194912310021"
PROMOTION = {
    "title": "国家级好礼限时送",
    "body": f"全网最低价！第一品牌，最近大家一起来。致电 13812345678，身份证 {VALID_ID}，旧号 {BAD_CHECKSUM}。",
    "kind": "promotion",
}


async def draft(system: System, community_id: str, **fields: Any) -> dict[str, Any]:
    async with await system.client(OPERATOR) as op:
        created = await op.post("/v1/posts", json={"community_id": community_id} | PROMOTION | fields)
    assert created.status_code == 201, created.text
    post: dict[str, Any] = created.json()
    return post


async def submitted(system: System, community_id: str, **fields: Any) -> dict[str, Any]:
    post = await draft(system, community_id, **fields)
    async with await system.client(OPERATOR) as op:
        response = await op.post(f"/v1/posts/{post['id']}/submit")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def matched(post: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["field"], f["category"], post[f["field"]][f["start"] : f["end"]]) for f in post["compliance_flags"]]


async def test_submit_flags_a_promotion_and_approval_needs_a_recorded_override(system: System) -> None:
    community_id = await create_community(system)
    post = await draft(system, community_id)
    assert (post["compliance_flags"], post["compliance_override"]) == (None, None)  # not checked yet
    async with await system.client(OPERATOR) as op:
        post = (await op.post(f"/v1/posts/{post['id']}/submit")).json()
        assert matched(post) == [
            ("title", "absolute_claim", "国家级"),
            ("body", "absolute_claim", "全网最低"),
            ("body", "absolute_claim", "第一品牌"),
            ("body", "personal_data", "13812345678"),
            ("body", "personal_data", VALID_ID),  # the invalid checksum is not flagged
        ]
        assert post["compliance_checked_at"] is not None
        assert (await op.get(f"/v1/posts/{post['id']}")).json()["compliance_flags"] == post["compliance_flags"]
    async with await system.client(REVIEWER) as rev:
        refused = await rev.post(f"/v1/posts/{post['id']}/approve")
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["type"] == PROBLEMS + "compliance-override-required"
        assert "全网最低" in problem["detail"]
        assert "override" in problem["detail"]
        assert VALID_ID not in problem["detail"]  # pattern names, never the personal data
        assert len(problem["flags"]) == 5
        explicit_no = await rev.post(f"/v1/posts/{post['id']}/approve", json={"override": False})
        assert explicit_no.status_code == 409
        assert (await rev.get(f"/v1/posts/{post['id']}")).json()["status"] == "in_review"
        assert (await rev.post(f"/v1/posts/{post['id']}/approve", json={"overide": True})).status_code == 422
        approved = await rev.post(f"/v1/posts/{post['id']}/approve", json={"override": True})
        assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["compliance_override"]["reviewer_id"] == REVIEWER.id
    assert body["compliance_override"]["at"] == body["updated_at"]
    assert len(body["compliance_flags"]) == 5
    async with await system.client(REVIEWER) as rev:  # the calendar shows the post as its own GET does
        listed = (await rev.get("/v1/posts", params={"community_id": body["community_id"]})).json()["items"]
        assert listed == [body] == [(await rev.get(f"/v1/posts/{post['id']}")).json()]
    (event,) = await content_events(system, "content.post_approved")
    assert (event["override"], event["reviewer_id"]) == (True, REVIEWER.id)


async def test_clean_and_non_promotion_posts_need_no_override(system: System) -> None:
    community_id = await create_community(system)
    clean = await submitted(system, community_id, title="周末活动", body="本周六下午三点，欢迎大家一起来。")
    announcement = await submitted(system, community_id, kind="announcement")  # flagged, not a promotion
    assert clean["compliance_flags"] == []
    assert len(announcement["compliance_flags"]) == 5
    async with await system.client(REVIEWER) as rev:
        for post in (clean, announcement):
            approved = await rev.post(f"/v1/posts/{post['id']}/approve")
            assert approved.status_code == 200, approved.text
            assert approved.json()["compliance_override"] is None
    assert [e["override"] for e in await content_events(system, "content.post_approved")] == [False, False]


async def test_an_edit_clears_the_flags_and_a_resubmit_checks_again(system: System) -> None:
    community_id = await create_community(system)
    post = await submitted(system, community_id)
    async with await system.client(REVIEWER) as rev:
        assert (await rev.post(f"/v1/posts/{post['id']}/reject", json={"reason": "绝对化用语"})).status_code == 200
    async with await system.client(OPERATOR) as op:
        edited = (await op.patch(f"/v1/posts/{post['id']}", json={"title": "好礼限时送", "body": "超值优惠"})).json()
        assert (edited["compliance_flags"], edited["compliance_checked_at"]) == (None, None)
        again = (await op.post(f"/v1/posts/{post['id']}/submit")).json()
        assert again["compliance_flags"] == []
    async with await system.client(REVIEWER) as rev:
        approved = await rev.post(f"/v1/posts/{post['id']}/approve")
        assert (approved.status_code, approved.json()["compliance_override"]) == (200, None)


async def test_the_check_on_its_own(system: System) -> None:
    community_id = await create_community(system)
    post = await draft(system, community_id)
    for caller in (OPERATOR, REVIEWER):
        async with await system.client(caller) as client:
            report = await client.post(f"/v1/posts/{post['id']}/compliance-check")
            assert report.status_code == 200, report.text
            assert [f["term"] for f in report.json()["flags"]] == [
                "国家级",
                "全网最低",
                "第一品牌",
                "cn_mobile",
                "cn_resident_id",
            ]
            text = await client.post(
                f"/v1/communities/{community_id}/compliance-check", json={"body": "年度最佳，电话 15912345678"}
            )
            assert text.status_code == 200, text.text
            assert [(f["term"], f["field"], f["start"], f["end"]) for f in text.json()["flags"]] == [
                ("最佳", "body", 2, 4),
                ("cn_mobile", "body", 8, 19),
            ]
    async with await system.client(OPERATOR) as op:
        stored = (await op.get(f"/v1/posts/{post['id']}")).json()  # a draft keeps its last check
        assert len(stored["compliance_flags"]) == 5
        assert (await op.post(f"/v1/posts/{uuid.uuid4()}/compliance-check")).status_code == 404
        too_long = await op.post(f"/v1/communities/{community_id}/compliance-check", json={"body": "x" * 20_001})
        assert too_long.status_code == 422
    for caller in (member(uuid.uuid4()), staff("agent")):
        async with await system.client(caller) as client:
            assert (await client.post(f"/v1/posts/{post['id']}/compliance-check")).status_code == 403
            refused = await client.post(f"/v1/communities/{community_id}/compliance-check", json={"body": "最佳"})
            assert refused.status_code == 403


async def test_forbidden_terms_defaults_validation_and_use(system: System) -> None:
    community_id = await create_community(system)
    path = f"/v1/communities/{community_id}/forbidden-terms"
    async with await system.client(OPERATOR) as op:
        defaults = (await op.get(path)).json()
        assert defaults["is_default"] is True
        terms = {(i["term"], i["category"], i["match"]) for i in defaults["items"]}
        for term in ("最佳", "国家级", "第一品牌", "全网最低"):
            assert (term, "absolute_claim", "phrase") in terms
        assert {("cn_mobile", "personal_data", "pattern"), ("cn_resident_id", "personal_data", "pattern")} <= terms
        assert all(len(t) >= 2 for t, _c, _m in terms)
        for bad in (
            [{"term": "最", "category": "absolute_claim"}],  # a lone character
            [{"term": " 最 ", "category": "absolute_claim"}],  # one once trimmed
            [{"term": "email", "category": "personal_data", "match": "pattern"}],  # no such pattern
            [{"term": "最佳", "category": "Absolute Claim"}],  # not a slug
            [{"term": "Top1", "category": "absolute_claim"}, {"term": "ＴＯＰ１", "category": "absolute_claim"}],
            [{"term": "x" * 51, "category": "absolute_claim"}],
            [{"term": "最佳", "category": "absolute_claim", "severity": "high"}],
            [{"term": f"词{i:03}", "category": "custom"} for i in range(501)],
        ):
            response = await op.put(path, json={"items": bad})
            assert response.status_code == 422, bad
            assert response.headers["content-type"].startswith("application/problem+json")
        assert (await op.put(path, json={})).status_code == 422
        unknown = await op.put(f"/v1/communities/{uuid.uuid4()}/forbidden-terms", json={"items": []})
        assert (unknown.status_code, unknown.json()["type"]) == (404, PROBLEMS + "community-not-found")
        custom = [
            {"term": "包治百病", "category": "medical_claim"},
            {"term": "cn_resident_id", "category": "personal_data", "match": "pattern"},
        ]
        saved = await op.put(path, json={"items": custom})
        assert saved.status_code == 200, saved.text
        assert saved.json()["is_default"] is False
        assert saved.json()["items"] == [c | {"match": c.get("match", "phrase")} for c in custom]
        assert (await op.get(path)).json()["items"] == saved.json()["items"]
    post = await submitted(system, community_id, body=f"全网最低，包治百病，13812345678，{VALID_ID}")
    assert matched(post) == [("body", "medical_claim", "包治百病"), ("body", "personal_data", VALID_ID)]
    for caller in (member(uuid.uuid4()), staff("agent"), REVIEWER):
        async with await system.client(caller) as client:
            assert (await client.get(path)).status_code == 403
            assert (await client.put(path, json={"items": []})).status_code == 403


async def test_concurrent_approvals_of_a_flagged_promotion_approve_it_once(system: System) -> None:
    community_id = await create_community(system)
    post = await submitted(system, community_id)
    async with await system.client(REVIEWER) as rev:
        answers = await asyncio.gather(
            *(rev.post(f"/v1/posts/{post['id']}/approve", json={"override": i % 2 == 0}) for i in range(10)),
            *(rev.post(f"/v1/posts/{post['id']}/compliance-check") for _ in range(5)),
        )
    approvals = answers[:10]
    assert sorted(a.status_code for a in approvals) == [200] + [409] * 9
    refusals = {a.json()["type"] for a in approvals if a.status_code == 409}
    assert refusals <= {PROBLEMS + "compliance-override-required", PROBLEMS + "invalid-transition"}
    assert all(a.status_code == 200 for a in answers[10:])
    (event,) = await content_events(system, "content.post_approved")
    assert event["override"] is True
    async with await system.client(REVIEWER) as rev:
        final = (await rev.get(f"/v1/posts/{post['id']}")).json()
    assert (final["status"], final["compliance_override"]["reviewer_id"]) == ("approved", REVIEWER.id)
    assert len(final["compliance_flags"]) == 5  # a check racing the approval left the flags as approved
