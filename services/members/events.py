"""Events the members service emits and the handlers for those it consumes.

Emitted (written to the outbox in the transaction of the change; payloads carry ids and
non-personal fields only, never email or phone):

- `member.created`          {member_id, external_id, tags, joined_at, consent:{marketing}}
- `member.updated`          {member_id, external_id, changed:[field names]}
- `member.joined_community` {member_id, community_id, joined_at}
- `member.left_community`   {member_id, community_id, left_at}
- `member.erased`           {member_id, erased_at}
- `activity.recorded`       {activity_id, member_id, community_id, type, occurred_at,
                             local_date, timezone, properties}

The members service consumes no events.
"""

from collections.abc import Mapping
from datetime import UTC, datetime

from services.common.events import EventHandler

MEMBER_CREATED = "member.created"
MEMBER_UPDATED = "member.updated"
MEMBER_JOINED_COMMUNITY = "member.joined_community"
MEMBER_LEFT_COMMUNITY = "member.left_community"
MEMBER_ERASED = "member.erased"
ACTIVITY_RECORDED = "activity.recorded"


def rfc3339(moment: datetime) -> str:
    """`2026-11-21T08:00:00Z` (UTC, `Z`, microseconds only when present)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


EVENT_HANDLERS: Mapping[str, EventHandler] = {}
