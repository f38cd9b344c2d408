"""Events the feedback service emits and the handlers for those it consumes.

It holds no personal data yet, so it does not take `member.erased`: its line in
`services.common.contracts.subscriptions` stays empty until it has a handler (the app
refuses to start when the two disagree).
"""

from services.common.events import EventHandlers

EVENT_HANDLERS: EventHandlers = {}
