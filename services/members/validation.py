"""Field types shared by the members schemas: names, tags, attributes, contact details.

Every text that reaches the database is checked here: Postgres refuses NUL characters,
and an unchecked one would be a 500 instead of a 422.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

MAX_TAGS = 50
MAX_ATTRIBUTES = 50
MAX_PROPERTIES_BYTES = 8192


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def normalize_email(value: str) -> str:
    return value.strip().lower()


def valid_email(value: str) -> str:
    email = normalize_email(value)
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError("must be an email address like name@example.com")
    return email


def normalize_phone(value: str) -> str:
    return _PHONE_SEPARATORS.sub("", value.strip())


def valid_phone(value: str) -> str:
    phone = normalize_phone(value)
    if not _E164.match(phone):
        raise ValueError("must be a phone number in international format, e.g. +8613800138000")
    return phone


def looks_like_phone(value: str) -> bool:
    return bool(_E164.match(normalize_phone(value)))


def _unique_tags(tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return unique


def _attribute_count(attributes: dict[str, Any]) -> dict[str, Any]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    return attributes


# Built once: `json.dumps` with options builds a new encoder on every call (hot in batch ingest).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain_json_size(value: dict[str, Any]) -> int | None:
    """The compact JSON size of a flat object of plain values, computed without encoding it;
    None when it holds anything else (the caller then encodes it). Plain: keys and strings
    of printable ASCII without quote or backslash (their JSON is themselves in quotes, and
    holds no NUL), ints, booleans and null: nearly every object a client sends."""
    size = 2 + max(len(value) - 1, 0)  # the braces, and a comma between members
    for key, item in value.items():
        if not (key.isascii() and key.isprintable()) or '"' in key or "\\" in key:
            return None
        size += len(key) + 3  # quoted, and a colon
        kind = type(item)
        if kind is str:
            if not (item.isascii() and item.isprintable()) or '"' in item or "\\" in item:
                return None
            size += len(item) + 2
        elif kind is bool:
            size += 4 if item else 5
        elif item is None:
            size += 4
        elif kind is int and -(10**18) < item < 10**18:
            size += len(str(item))
        else:
            return None
    return size


def check_properties(value: dict[str, Any]) -> dict[str, Any]:
    """`Properties`' check (JSON-encodable, at most MAX_PROPERTIES_BYTES compact), also run
    by batch ingest on plain dicts (`activity.schemas.passes_model_checks`)."""
    # Batch ingest checks a thousand of these per request: most are flat and small, and
    # their size needs no encoding; anything else is encoded exactly as before.
    plain = _plain_json_size(value) if len(value) <= 64 else None
    if plain is not None and plain <= MAX_PROPERTIES_BYTES:
        return value
    try:
        dumped = _COMPACT_JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValueError("must be a JSON object") from exc
    # json.dumps escapes NUL (in keys and values alike), so one scan of the text finds any.
    if "\\u0000" in dumped:
        raise ValueError("must not contain NUL characters")
    if len(dumped.encode()) > MAX_PROPERTIES_BYTES:
        raise ValueError(f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON")
    return value


ExternalId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+|-]{0,199}$"),
    Field(
        description="The partner's own id for the member (letters, digits and ._:@+|-)", examples=["wx_o6_bmasdasdsad6"]
    ),
]
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_no_control_characters)
]
Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(valid_email)]
Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(valid_phone)]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), AfterValidator(_no_control_characters)
]
Tags = Annotated[list[Tag], Field(max_length=200), AfterValidator(_unique_tags)]
AttributeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
AttributeText = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_control_characters)]
AttributeValue = bool | int | Annotated[float, Field(allow_inf_nan=False)] | AttributeText
Attributes = Annotated[dict[AttributeKey, AttributeValue], AfterValidator(_attribute_count)]
Properties = Annotated[dict[str, Any], AfterValidator(check_properties)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
