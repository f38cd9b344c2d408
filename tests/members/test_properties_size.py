"""The size check of activity properties: its shortcut for flat, plain objects agrees with
encoding them, byte for byte, and so accepts and refuses exactly the same objects."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from services.members.validation import _COMPACT_JSON, MAX_PROPERTIES_BYTES, _plain_json_size, check_properties


def encoded_size(value: dict[str, Any]) -> int:
    return len(_COMPACT_JSON.encode(value).encode())


def random_plain(rng: random.Random, members: int, longest: int) -> dict[str, Any]:
    printable = string.ascii_letters + string.digits + " !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
    values: list[Any] = [True, False, None, 0, -1, 7, 10**17, -(10**17) + 1]

    def text(n: int) -> str:
        return "".join(rng.choice(printable) for _ in range(n))

    return {
        text(rng.randint(0, 12)): rng.choice([*values, text(rng.randint(0, longest)), rng.randint(-(10**12), 10**12)])
        for _ in range(members)
    }


def test_the_plain_size_is_the_encoded_size() -> None:
    rng = random.Random(7)
    assert _plain_json_size({}) == encoded_size({}) == 2
    for _ in range(3000):
        value = random_plain(rng, rng.randint(0, 12), rng.choice([5, 50, 900]))
        assert _plain_json_size(value) == encoded_size(value), value


@pytest.mark.parametrize(
    "value",
    [
        {"q": 'say "hi"'},
        {"p": "back\\slash"},
        {"nl": "line\nbreak"},
        {"nul": "a\x00b"},
        {"k\x00": "v"},
        {"é": "v"},
        {"v": "café"},
        {"f": 1.5},
        {"nan": float("nan")},
        {"big": 10**30},
        {"nested": {"a": 1}},
        {"list": [1, 2]},
    ],
)
def test_anything_but_plain_values_is_encoded(value: dict[str, Any]) -> None:
    assert _plain_json_size(value) is None


def verdict(value: dict[str, Any]) -> str:
    try:
        check_properties(value)
    except ValueError as exc:
        return str(exc)
    return "ok"


def test_the_limit_falls_on_the_same_byte() -> None:
    base = {"channel": "wechat", "n": 1}
    room = MAX_PROPERTIES_BYTES - encoded_size({**base, "pad": ""})
    fits, over = {**base, "pad": "x" * room}, {**base, "pad": "x" * (room + 1)}
    assert encoded_size(fits) == MAX_PROPERTIES_BYTES
    assert verdict(fits) == "ok"
    assert verdict(over) == f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"
    assert verdict({"nul": "a\x00b"}) == "must not contain NUL characters"
    assert verdict({"nan": float("nan")}) == "must be a JSON object"
