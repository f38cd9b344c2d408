"""Events the feedback service emits and the handlers for those it consumes."""

from collections.abc import Mapping

from services.common.events import EventHandler

# member.erased: this service holds no personal data yet, so there is nothing to remove.
EVENT_HANDLERS: Mapping[str, EventHandler] = {}
