"""The base of every event contract: one pydantic model per event type.

A contract is what a producer emits, what a consumer parses and what the webhook catalogue
publishes, so the three cannot drift apart:

- **Producers are held to it strictly**: unknown fields are refused (`extra="forbid"`), ids
  are UUIDs, times are timezone-aware and normalised to UTC, enumerations are `Literal`s.
  A producer that sends something the contract does not say fails at `emit`, in its tests.
- **Consumers parse tolerantly** (`Contract.parse`): fields they do not know are ignored, so a
  producer deployed with a newer, additive version of a contract does not break a consumer
  still on the older one. Everything the consumer relies on is still checked: a missing or
  mistyped field is refused, and the kit rejects (then parks) the event.
- **The published schema** leaves `additionalProperties` open for the same reason: partners
  must accept fields added later (new fields arrive with defaults; renames bump
  `schema_version`).

Subclasses set `event_type` (the type name, e.g. `member.created`), may bump
`schema_version`, and give one realistic example in `model_config`. Defining the class
registers it in `EVENT_TYPES`; abstract bases (no `event_type` of their own) are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, GetJsonSchemaHandler, JsonValue
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# RFC 3339 in UTC on the wire (`2026-11-21T08:00:00Z`); a naive datetime is refused.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def with_example(**fields: JsonValue) -> ConfigDict:
    """A contract's `model_config` holding its one documented example."""
    return ConfigDict(json_schema_extra={"examples": [fields]})


class ContractPart(BaseModel):
    """A nested object of a contract: strict for producers, open in the published schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        handler.resolve_ref_schema(schema).pop("additionalProperties", None)
        return schema


class UnknownEventType(LookupError):
    """No contract is registered for this event type."""


_REGISTRY: dict[str, type[EventModel]] = {}
# Every registered contract by event type: the kit's own and any a test registers.
EVENT_TYPES: Mapping[str, type[EventModel]] = MappingProxyType(_REGISTRY)


class EventModel(ContractPart):
    """The `data` of one event type (see the module docstring)."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            return  # an abstract base shared by several contracts
        known = _REGISTRY.get(cls.event_type)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"two contracts for {cls.event_type!r}: {known.__qualname__} and {cls.__qualname__}")
        _REGISTRY[cls.event_type] = cls

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """A consumer's reading of `data`: fields this version does not know are ignored."""
        return cls.model_validate(data, extra="ignore")

    @classmethod
    def example(cls) -> dict[str, Any]:
        """The contract's first documented example (the catalogue shows it)."""
        extra = cls.model_config.get("json_schema_extra")
        if not isinstance(extra, dict) or not extra.get("examples"):
            raise TypeError(f"{cls.__qualname__} has no example")
        example: dict[str, Any] = extra["examples"][0]  # type: ignore[index,assignment]
        return example

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring: what happened."""
        return (cls.__doc__ or cls.event_type).strip().splitlines()[0]


def contract_for(event_type: str) -> type[EventModel]:
    """The registered contract of an event type."""
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(f"no contract is registered for event type {event_type!r}") from None
