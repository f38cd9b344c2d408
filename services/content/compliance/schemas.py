"""The HTTP contract of forbidden terms and compliance checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.content.compliance.checker import MIN_TERM_LENGTH, PATTERNS, fold

MAX_TERMS = 500


class ForbiddenTermBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str = Field(
        min_length=1,
        max_length=50,
        description="A phrase of 2+ characters matched as a whole (case- and width-insensitive), "
        "or for `match: pattern` one of `cn_mobile`, `cn_resident_id`",
    )
    category: str = Field(
        pattern=r"^[a-z][a-z0-9_]{1,39}$",
        description="Why it is forbidden, e.g. `absolute_claim`, `misleading_promotion`, `personal_data`",
    )
    match: Literal["phrase", "pattern"] = "phrase"

    @field_validator("term")
    @classmethod
    def _stripped(cls, term: str) -> str:
        return term.strip()

    @model_validator(mode="after")
    def _matchable(self) -> Self:
        if self.match == "pattern":
            if self.term not in PATTERNS:
                raise ValueError(f"a pattern is one of {', '.join(sorted(PATTERNS))}")
        elif len(self.term) < MIN_TERM_LENGTH:
            raise ValueError(
                f"a term is a phrase of at least {MIN_TERM_LENGTH} characters (a single character would flag "
                "ordinary words)"
            )
        return self


class ForbiddenTermsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ForbiddenTermBody] = Field(max_length=MAX_TERMS, description="The whole list (replaces it)")

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for item in self.items:
            key = (item.match, fold(item.term))
            if key in seen:
                raise ValueError(f"{item.term!r} is listed twice")
            seen.add(key)
        return self


class ForbiddenTermsRead(BaseModel):
    community_id: uuid.UUID
    items: list[ForbiddenTermBody]
    is_default: bool = Field(description="True until an operator sets the community's own list")
    updated_at: datetime | None


class ComplianceFlag(BaseModel):
    term: str = Field(description="The listed term (or pattern name) that matched")
    category: str
    match: Literal["phrase", "pattern"]
    field: Literal["title", "body"] = Field(description="Which text the offsets are in")
    start: int = Field(description="Offset of the first matched character (Unicode code points)")
    end: int = Field(description="Offset just past the last one: `text[start:end]` matched")


class ComplianceReport(BaseModel):
    flags: list[ComplianceFlag]
    checked_at: datetime


class TextCheck(BaseModel):
    """A text to check before it is a post (an editor's draft)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=20_000)


class ComplianceOverride(BaseModel):
    reviewer_id: uuid.UUID = Field(description="The reviewer who approved despite the flags")
    at: datetime
