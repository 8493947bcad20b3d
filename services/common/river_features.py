"""River transformers that live inside model artifacts.

They are here, in the shared runtime, because every process that unpickles a verified
artifact (serving, the evaluator, other teams' services through the SDK) must be able to
import them, and services never import each other.
"""

from __future__ import annotations

import math
from typing import Any

from river import base

_NUMBER = (int, float)


class FeatureEncoder(base.Transformer):
    """The first step of every pipeline: spec features only, ``None`` dropped, bools 0/1.

    Stateless; see the module docstring for the rule.

    >>> FeatureEncoder(numbers=("x",), bools=("f",), categories=("c",)).transform_one(
    ...     {"x": 2, "f": True, "c": None, "other": 1.0})
    {'x': 2.0, 'f': 1.0}
    """

    def __init__(
        self,
        numbers: tuple[str, ...] = (),
        bools: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
    ) -> None:
        self.numbers = tuple(numbers)
        self.bools = tuple(bools)
        self.categories = tuple(categories)

    def transform_one(self, x: dict[Any, Any]) -> dict[Any, Any]:
        # Runs twice per learned example (predict, then learn): plain floats take the
        # short way; anything else the general rule.
        out: dict[Any, Any] = {}
        get = x.get
        for name in self.numbers:
            value = get(name)
            if type(value) is float:
                if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                    out[name] = value
            elif isinstance(value, _NUMBER) and math.isfinite(value):
                out[name] = float(value)
        for name in self.bools:
            value = get(name)
            if isinstance(value, _NUMBER):
                out[name] = 1.0 if value else 0.0
        for name in self.categories:
            value = x.get(name)
            if value is not None:
                out[name] = str(value)
        return out
