"""A bounded memory of example ids, stored compactly: 8 bytes per id in a checkpoint (the
learner's de-duplication window, also carried by online snapshots for their followers).

Each id is remembered as a 64-bit BLAKE2b digest (stable across processes, unlike
``hash()``) in a first-in first-out ring (for the bound) beside a set (for lookups). Two
different ids share a digest with probability about ``n**2 / 2**65``: 3e-10 for a full
window of 100,000, after which the newer one would be taken for a duplicate.

>>> import pickle
>>> window = IdWindow()
>>> window.remember("a", limit=2), window.remember("a", limit=2)
(True, False)
>>> window.remember("b", limit=2), window.remember("c", limit=2), "a" in window
(True, True, False)
>>> len(window), len(pickle.dumps(window)) < 100
(2, True)
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from hashlib import blake2b


def digest(example_id: str) -> int:
    """The id's 64-bit signed digest (what the window stores)."""
    return int.from_bytes(
        blake2b(example_id.encode(), digest_size=8).digest(), "little", signed=True
    )


class IdWindow:
    """The last ``limit`` ids remembered, oldest first; pickled as packed 64-bit digests."""

    __slots__ = ("_order", "_set")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._order: deque[int] = deque()
        self._set: set[int] = set()
        for example_id in ids:
            self.remember(example_id, limit=2**62)

    def remember(self, example_id: str, limit: int) -> bool:
        """Note ``example_id``; False when it is already among those remembered.

        The oldest are forgotten while more than ``limit`` are held.
        """
        h = digest(example_id)
        if h in self._set:
            return False
        self._set.add(h)
        self._order.append(h)
        while len(self._order) > limit:
            self._set.discard(self._order.popleft())
        return True

    def forget(self, example_id: str) -> None:
        """Forget ``example_id`` (an example remembered but then not learned)."""
        h = digest(example_id)
        if h not in self._set:
            return
        self._set.discard(h)
        if self._order and self._order[-1] == h:
            self._order.pop()  # the usual case: the id just remembered
        else:
            self._order.remove(h)

    def __contains__(self, example_id: object) -> bool:
        return isinstance(example_id, str) and digest(example_id) in self._set

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[int]:
        """The digests, oldest first."""
        return iter(self._order)

    def __getstate__(self) -> bytes:
        return array("q", self._order).tobytes()

    def __setstate__(self, state: bytes) -> None:
        packed = array("q")
        packed.frombytes(state)
        self._order = deque(packed)
        self._set = set(packed)
