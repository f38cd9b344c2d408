"""Events the members service emits and the handlers for those it consumes."""

from collections.abc import Mapping

from services.common.events import EventHandler

EVENT_HANDLERS: Mapping[str, EventHandler] = {}
