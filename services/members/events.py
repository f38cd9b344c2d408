"""Events the members service emits and the handlers for those it consumes.

Emitted (written to the outbox in the transaction of the change; their contracts are in
`services.common.contracts.members` and `.activity`; payloads carry ids and non-personal
fields only, never email or phone): `member.created`, `member.updated`,
`member.joined_community`, `member.left_community`, `member.erased`, `activity.recorded`.

The members service consumes no events.
"""

from services.common.events import EventHandlers

EVENT_HANDLERS: EventHandlers = {}
