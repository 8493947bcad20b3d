"""The duplicate index: which raw event was accepted for each ``(stream, example_id)``.

DESIGN's rule: the same ``example_id`` under the same raw ``event_id`` is a redelivery
(re-emitted unchanged); under a different raw ``event_id`` it is a duplicate
(dead-lettered). Only accepted ids count, so only the validator's accepted examples
are recorded here, and the index can be rebuilt from the valid topic after a restart.

Memory is bounded: the index remembers at least the last ``window`` accepted ids and
at most ``2 * window`` (two generations of plain dicts; the older one is dropped when
the newer one fills). Keys are 64-bit hashes of ``(stream, example_id)``, values pack
the raw event id (128 bits) with the spec version: about 140 bytes per id. A hash
collision would reject a new example as a duplicate; with n ids remembered its
probability is about n^2 / 2^65 (3e-8 for a million).

>>> import uuid
>>> index = DuplicateIndex(window=2)
>>> a, b = uuid.UUID(int=1), uuid.UUID(int=2)
>>> index.get("s", "1") is None
True
>>> index.record("s", "1", a, spec_version=3)
>>> index.get("s", "1")
Accepted(raw_event_id=UUID('00000000-0000-0000-0000-000000000001'), spec_version=3)
>>> index.record("s", "2", b, 3); index.record("s", "3", b, 3); index.record("s", "4", b, 3)
>>> index.get("s", "1") is None, index.get("s", "3") is not None
(True, True)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

_VERSION_BITS: Final = 24
_VERSION_MASK: Final = (1 << _VERSION_BITS) - 1


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the index knows of an accepted example."""

    raw_event_id: uuid.UUID
    spec_version: int


class DuplicateIndex:
    """Accepted raw event ids by ``(stream, example_id)``, bounded by ``window``."""

    def __init__(self, window: int = 100_000) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self._current: dict[int, int] = {}
        self._previous: dict[int, int] = {}

    def get(self, stream: str, example_id: str) -> Accepted | None:
        """The accepted raw event for this example id, if remembered."""
        key = hash((stream, example_id))
        packed = self._current.get(key)
        if packed is None:
            packed = self._previous.get(key)
            if packed is None:
                return None
        return Accepted(uuid.UUID(int=packed >> _VERSION_BITS), packed & _VERSION_MASK)

    def record(
        self, stream: str, example_id: str, raw_event_id: uuid.UUID, spec_version: int
    ) -> None:
        """Remember that ``raw_event_id`` was accepted for this example id."""
        current = self._current
        current[hash((stream, example_id))] = (raw_event_id.int << _VERSION_BITS) | (
            spec_version & _VERSION_MASK
        )
        if len(current) >= self.window:
            self._previous = current
            self._current = {}

    def __len__(self) -> int:
        """Ids held (an id in both generations counts twice)."""
        return len(self._current) + len(self._previous)
