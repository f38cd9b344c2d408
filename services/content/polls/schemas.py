"""The HTTP contract of polls."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class VoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    option: str = Field(min_length=1, max_length=200, description="One of the poll's `options`, as written")


class OptionResult(BaseModel):
    option: str
    votes: int


class PollResults(BaseModel):
    post_id: uuid.UUID
    total: int
    options: list[OptionResult]
    my_vote: str | None = Field(default=None, description="The calling member's choice, if they voted")
