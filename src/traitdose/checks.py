"""Deterministic rubric checks: does a response show a criterion's behaviour, decided offline.

A check describes what a response that *shows the behaviour* looks like. For a required criterion
that means the response did the right thing; for a penalised one, that it made the failure. All
conditions given in one check must hold together; `negate` inverts the result.
"""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from traitdose.refusal import is_refusal, normalise_quotes


def normalise(text: str) -> str:
    return " ".join(normalise_quotes(text).lower().split())


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    any_of: tuple[str, ...] = Field(default=(), description="case-insensitive phrases; one must occur")
    all_of: tuple[str, ...] = Field(default=(), description="case-insensitive phrases; all must occur")
    regex: tuple[str, ...] = Field(default=(), description="case-insensitive patterns; one must match")
    min_words: int | None = Field(default=None, ge=1)
    max_words: int | None = Field(default=None, ge=1)
    refusal: bool | None = Field(default=None, description="the response is (true) or is not (false) a refusal")
    negate: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"invalid regex {p!r}: {e}") from e
        return patterns

    @model_validator(mode="after")
    def _not_empty(self) -> Check:
        if not (self.any_of or self.all_of or self.regex or self.refusal is not None
                or self.min_words or self.max_words):
            raise ValueError("a check needs at least one condition")
        return self

    @cached_property
    def _patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.regex]

    def __call__(self, response: str) -> bool:
        text = normalise(response)
        words = len(text.split())
        conditions: list[bool] = []
        if self.any_of:
            conditions.append(any(normalise(p) in text for p in self.any_of))
        if self.all_of:
            conditions.append(all(normalise(p) in text for p in self.all_of))
        if self.regex:
            raw = normalise_quotes(response)
            conditions.append(any(p.search(raw) for p in self._patterns))
        if self.min_words is not None:
            conditions.append(words >= self.min_words)
        if self.max_words is not None:
            conditions.append(words <= self.max_words)
        if self.refusal is not None:
            conditions.append(is_refusal(response) == self.refusal)
        return all(conditions) != self.negate
