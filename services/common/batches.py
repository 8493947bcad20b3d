"""One bad row fails only itself: call a batch function on a whole batch and, when it
raises, on each row alone.

Serving's Kafka path and the evaluator predict in batches for speed; a model that raises
on one row (a value it refuses) must not take the rest of the batch down with it.

>>> def halve(xs):
...     return [10 // x for x in xs]
>>> batch_or_each(halve, [1, 2, 5])
([10, 5, 2], {})
>>> results, errors = batch_or_each(halve, [1, 0, 5])
>>> results, {i: type(e).__name__ for i, e in errors.items()}
([10, None, 2], {1: 'ZeroDivisionError'})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["batch_or_each"]

X = TypeVar("X")
Y = TypeVar("Y")


def batch_or_each(
    fn: Callable[[list[X]], Sequence[Y]], rows: Sequence[X]
) -> tuple[list[Y | None], dict[int, Exception]]:
    """``fn(rows)``; when it raises, ``fn([row])`` for each row. Returns the results (None
    where a row failed) and each failed row's index with its exception."""
    try:
        return list(fn(list(rows))), {}
    except Exception:  # noqa: BLE001 - find the rows it fails on, one at a time
        return _each(fn, rows)


def _each(
    fn: Callable[[list[X]], Sequence[Y]], rows: Sequence[X]
) -> tuple[list[Y | None], dict[int, Exception]]:
    results: list[Y | None] = []
    errors: dict[int, Exception] = {}
    for i, row in enumerate(rows):
        try:
            (result,) = fn([row])
        except Exception as exc:  # noqa: BLE001 - this row fails, not the batch
            results.append(None)
            errors[i] = exc
        else:
            results.append(result)
    return results, errors
