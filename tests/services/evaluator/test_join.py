"""The shadow-pair join: bounded in time and in count, with every drop counted."""

from __future__ import annotations

import pickle
import uuid

import pytest

from schemas import ModelAnswer, ShadowPair
from services.evaluator.join import ShadowJoin


def pair(example_id: str, stream: str = "s", champion: int = 1) -> ShadowPair:
    return ShadowPair(
        stream=stream,
        example_id=example_id,
        request_event_id=uuid.uuid4(),
        champion=ModelAnswer(model=stream, version=champion, prediction=1),
        challenger=ModelAnswer(model=stream, version=champion + 1, prediction=0),
    )


def test_labels_join_their_pairs_by_stream_and_id() -> None:
    join = ShadowJoin(window_s=60, max_pending=100)
    join.add(pair("1", "a"), now=0)
    join.add(pair("1", "b"), now=0)
    got = join.take("b", "1", now=1)
    assert got is not None and got.stream == "b"
    assert join.take("b", "1", now=1) is None  # taken once
    assert join.take("a", "2", now=1) is None
    assert join.joined == 1 and len(join) == 1


def test_pairs_expire_after_the_window() -> None:
    join = ShadowJoin(window_s=10, max_pending=100)
    for i in range(5):
        join.add(pair(str(i)), now=float(i))
    assert join.expire(12.5) == 3  # added at 0, 1, 2
    assert join.take("s", "3", now=12.5) is not None
    assert join.expired == 3 and len(join) == 1


def test_memory_is_bounded_by_max_pending() -> None:
    join = ShadowJoin(window_s=1e9, max_pending=1000)
    for i in range(5000):
        join.add(pair(str(i)), now=float(i))
    assert len(join) == 1000 and join.evicted == 4000
    assert join.take("s", "0", now=5000) is None
    assert join.take("s", "4999", now=5000) is not None


def test_a_newer_pair_replaces_an_older_one() -> None:
    join = ShadowJoin(window_s=60, max_pending=10)
    join.add(pair("1", champion=1), now=0)
    join.add(pair("1", champion=5), now=1)
    got = join.take("s", "1", now=2)
    assert got is not None and got.champion.version == 5 and join.replaced == 1


def test_the_join_pickles_for_checkpoints() -> None:
    join = ShadowJoin(window_s=60, max_pending=10)
    join.add(pair("7"), now=0)
    restored: ShadowJoin = pickle.loads(pickle.dumps(join))  # noqa: S301 - our own bytes
    assert restored.take("s", "7", now=1) is not None


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        ShadowJoin(window_s=0, max_pending=1)
    with pytest.raises(ValueError):
        ShadowJoin(window_s=1, max_pending=0)
