"""Annotated types that several constructors share: the range lives in the type, and
`vaelab.config.schema` checks config values against it before anything is built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from vaelab.config.schema import Seed

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
#: Layer widths of a backbone, shallowest (encoder) or deepest (decoder) first.
Widths = Annotated[Sequence[PositiveInt], Field(min_length=1)]
#: A split's size: a count of examples, or a fraction of the examples it is carved from.
SplitSize = NonNegativeInt | Annotated[float, Field(ge=0, lt=1)]

__all__ = [
    "NonNegative",
    "NonNegativeInt",
    "Positive",
    "PositiveInt",
    "Seed",
    "SplitSize",
    "Widths",
]
