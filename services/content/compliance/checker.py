"""The compliance checker: plain functions over text, no database, no HTTP.

`check(title, body, terms)` finds every forbidden phrase and every personal-data pattern in
a post and answers flags `{term, category, match, field, start, end}`, where `start`/`end`
are offsets into that field (Unicode code points, end exclusive: `text[start:end]` is what
matched).

- **Phrases** match as a whole, case-insensitively, with full-width forms read as their
  ASCII twins ("NO.1" typed in full width is "no.1"); folding maps one character to one, so offsets hold.
  A term is at least two characters (the list refuses single characters), so ordinary
  words that share a character with a claim never flag.
- **Patterns** are a closed set (operators choose which apply, never write a regex):
  `cn_mobile`, a mainland mobile number (11 digits from 13x-19x, optionally +86 and
  3-4-4 groups split by a space or hyphen), and `cn_resident_id`, an 18-character
  resident ID whose birth date is a real date and whose last character is the ISO 7064
  MOD 11-2 check of the first 17 (GB 11643): a number failing its checksum is not one.
- Overlapping finds resolve leftmost-longest, so "全网最低价" is one flag (全网最低), not three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

Match = Literal["phrase", "pattern"]
Field = Literal["title", "body"]

MIN_TERM_LENGTH = 2

# Full-width ASCII (U+FF01-FF5E) and the ideographic space to their ASCII twins, upper case
# to lower: one character to one, so an offset in the folded text is one in the original.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_FOLD = {k: (v + 32 if 0x41 <= v <= 0x5A else v) for k, v in _FOLD.items()}
_FOLD |= {code: code + 32 for code in range(0x41, 0x5B)}


def fold(text: str) -> str:
    """The text as the checker reads it (same length, same offsets)."""
    return text.translate(_FOLD)


@dataclass(frozen=True)
class Term:
    term: str
    category: str
    match: Match = "phrase"


@dataclass(frozen=True)
class Flag:
    term: str
    category: str
    match: Match
    field: Field
    start: int
    end: int


# ---------------------------------------------------------------- patterns

_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
_RESIDENT_ID = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9x](?![0-9a-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17-i) mod 11
_ID_CHECK = "10x98765432"  # indexed by the weighted sum mod 11


def resident_id_check(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of 17 digits ('x' stands for 10)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_resident_id(candidate: str) -> bool:
    """18 characters, a real birth date (1900-2099) and a correct check character."""
    folded = fold(candidate)
    if len(folded) != 18 or not folded[:17].isascii() or not folded[:17].isdigit():
        return False
    try:
        born = date(int(folded[6:10]), int(folded[10:12]), int(folded[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2099 and resident_id_check(folded[:17]) == folded[17]


def _mobiles(text: str) -> Iterable[tuple[int, int]]:
    return (m.span() for m in _MOBILE.finditer(text))


def _resident_ids(text: str) -> Iterable[tuple[int, int]]:
    return (m.span() for m in _RESIDENT_ID.finditer(text) if is_resident_id(m.group()))


PATTERNS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "cn_mobile": _mobiles,
    "cn_resident_id": _resident_ids,
}


# ---------------------------------------------------------------- the check


def _phrase_spans(text: str, phrase: str) -> Iterable[tuple[int, int]]:
    start = text.find(phrase)
    while start != -1:
        yield start, start + len(phrase)
        start = text.find(phrase, start + 1)


def check_field(field: Field, text: str, terms: Sequence[Term]) -> list[Flag]:
    """Flags in one field: every find, then leftmost-longest without overlaps."""
    folded = fold(text)
    found: list[Flag] = []
    for term in terms:
        if term.match == "pattern":
            spans = PATTERNS[term.term](folded) if term.term in PATTERNS else ()
        else:
            phrase = fold(term.term)
            spans = _phrase_spans(folded, phrase) if len(phrase) >= MIN_TERM_LENGTH else ()
        found.extend(Flag(term.term, term.category, term.match, field, start, end) for start, end in spans)
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    kept: list[Flag] = []
    for flag in found:
        if not kept or flag.start >= kept[-1].end:
            kept.append(flag)
    return kept


def check(title: str, body: str, terms: Sequence[Term]) -> list[Flag]:
    """Every flag of a post, the title's first, each field's in order of position."""
    return check_field("title", title, terms) + check_field("body", body, terms)
