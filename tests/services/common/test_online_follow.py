"""The pure part of online following: the learner's admission rules, the twin model and
the following predictor."""

from __future__ import annotations

import itertools
import pickle
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from river import forest, linear_model, preprocessing
from river.datasets import synth

from schemas import LabelledExample
from schemas.streams import Spec
from services.common.example_ids import IdWindow
from services.common.online_follow import (
    ADMIT,
    OTHER_STREAM,
    PAUSE,
    SKIP,
    FollowingPredictor,
    FollowPoint,
    FollowRules,
    TwinModel,
)
from services.common.predictor import Predictor

SPEC = Spec.model_validate(
    {
        "features": [{"name": f"x{i}", "type": "number", "min": 0, "max": 10} for i in range(3)],
        "label": {"kind": "class", "classes": [False, True]},
    }
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(n: int, seed: int = 1) -> list[tuple[dict[str, float], bool]]:
    return [
        ({f"x{i}": float(v) for i, v in x.items()}, bool(y))
        for x, y in itertools.islice(synth.SEA(seed=seed), n)
    ]


def example(i: int, x: dict[str, Any], y: Any, **update: Any) -> LabelledExample:
    values: dict[str, Any] = {
        "stream": "s",
        "example_id": str(i),
        "features": x,
        "label": y,
        "event_time": T0,
        "spec_version": 1,
    }
    return LabelledExample(**(values | update))


def point(**update: Any) -> FollowPoint:
    values: dict[str, Any] = {
        "stream": "s",
        "topic": "t",
        "partition": 0,
        "next_offset": 10,
        "example_count": 5,
        "config_version": 1,
        "spec": SPEC,
    }
    return FollowPoint(**(values | update))


def test_rules_skip_what_the_learner_skips() -> None:
    (x, y), *_ = rows(1)
    rules = FollowRules(point(ids=IdWindow(["seen"])))
    assert rules.admit(10, example(1, x, y, stream="other")) == OTHER_STREAM
    assert rules.admit(11, example(1, x, y, example_id="seen")) == SKIP  # in the snapshot
    assert rules.admit(12, example(1, x, "yes")) == SKIP  # not one of the classes
    assert rules.admit(13, example(1, x | {"x0": 11.0}, y)) == SKIP  # out of range
    assert rules.admit(14, example(1, x, y)) == ADMIT
    assert rules.admit(15, example(1, x, y)) == SKIP  # a redelivery
    assert rules.skipped == {"duplicate": 2, "nonconforming": 2}
    assert rules.position == 16


def test_a_refused_example_is_not_a_duplicate_later() -> None:
    (x, y), *_ = rows(1)
    rules = FollowRules(point())
    row = example(1, x, y)
    assert rules.admit(10, row) == ADMIT
    rules.refused(row)
    assert rules.admit(11, row) == ADMIT


def test_a_newer_spec_version_pauses_before_the_record() -> None:
    (x, y), *_ = rows(1)
    rules = FollowRules(point())
    assert rules.admit(10, example(1, x, y)) == ADMIT
    assert rules.admit(11, example(2, x, y, spec_version=2)) == PAUSE
    assert rules.position == 11  # the next snapshot's follower judges it


def test_the_snapshot_id_window_is_not_changed() -> None:
    window = IdWindow(["a"])
    rules = FollowRules(point(ids=window))
    (x, y), *_ = rows(1)
    rules.admit(10, example(1, x, y, example_id="b"))
    assert "b" not in window and "b" in rules.ids


def test_the_twin_predicts_like_one_model_learning_the_same_rows() -> None:
    data = rows(600)
    reference = forest.ARFClassifier(n_models=3, seed=1)
    twin = TwinModel(forest.ARFClassifier(n_models=3, seed=1), examples=0)
    for i, (x, y) in enumerate(data):
        reference.learn_one(x, y)
        twin.add(x, y)
        if i % 7 == 0:
            assert twin.swap()
    twin.swap()
    twin.swap()  # nothing left: no swap
    assert twin.examples == 600 and twin.pending == 0
    probe = [x for x, _ in rows(100, seed=2)]
    assert twin.predict(lambda m: [m.predict_proba_one(x) for x in probe]) == [
        reference.predict_proba_one(x) for x in probe
    ]


def test_a_copy_held_by_a_reader_is_never_learned_on() -> None:
    (x, y), (x2, y2) = rows(2)
    twin = TwinModel(linear_model.LogisticRegression(), examples=0)
    holding = threading.Event()
    release = threading.Event()
    held: list[Any] = []

    def read(model: Any) -> None:
        held.append(pickle.dumps(model))
        holding.set()
        release.wait(10)
        held.append(pickle.dumps(model))

    reader = threading.Thread(target=twin.predict, args=(read,))
    twin.add(x, y)
    assert twin.swap()  # the reader below holds the new live copy
    reader.start()
    assert holding.wait(10)
    twin.add(x2, y2)
    assert twin.swap()  # the standby was free: it learns and becomes live
    twin.add(x, y)
    assert not twin.swap()  # the held copy is the standby now: left alone
    release.set()
    reader.join(10)
    assert held[0] == held[1]  # unchanged while it was read
    assert twin.swap() and twin.examples == 3


class Picky:
    """A model that refuses an example without a label."""

    def __init__(self) -> None:
        self.learned = 0

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        if y is None:
            raise ValueError("no label")
        self.learned += 1


def test_an_example_the_model_refuses_is_reported_once_and_not_counted() -> None:
    twin = TwinModel(Picky(), examples=10)
    refused: list[Any] = []
    for i, y in enumerate([True, None, False]):
        twin.add({}, y, tag=i)
    assert twin.swap(on_error=lambda tag, exc: refused.append(tag))
    twin.add({}, True, tag=3)
    assert twin.swap(on_error=lambda tag, exc: refused.append(tag))
    assert refused == [1] and twin.examples == 13


def test_the_following_predictor_answers_from_the_twin() -> None:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    snapshot = Predictor.river(model, spec=SPEC, spec_sha256="0" * 64)
    twin = TwinModel(model, examples=100)
    reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    follower = FollowingPredictor(snapshot, twin, base_version=4)
    assert follower.following() == {"base_version": 4, "learned_examples": 100}
    for x, y in rows(50):
        twin.add(x, y)
        reference.learn_one(x, y)
    twin.swap()
    probe = [x for x, _ in rows(5, seed=3)]
    assert follower.predict_many(probe) == [reference.predict_one(x) for x in probe]
    assert follower.following() == {"base_version": 4, "learned_examples": 150}
    assert list(follower.predict_proba_many(probe)[0]) == ["False", "True"]
    with pytest.raises(TypeError, match="live state"):
        pickle.dumps(follower)


def test_one_copy_learns_at_once_until_forked() -> None:
    data = rows(200)
    reference = linear_model.LogisticRegression()
    twin = TwinModel(linear_model.LogisticRegression(), examples=0)
    for x, y in data[:100]:
        assert twin.learn(x, y) is None
        reference.learn_one(x, y)
    assert twin.examples == 100 and not twin.swap()  # nothing queued, no standby
    twin.fork()
    with pytest.raises(RuntimeError):
        twin.learn(*data[0])
    probe = [x for x, _ in rows(20, seed=4)]
    assert twin.predict(lambda m: [m.predict_proba_one(x) for x in probe]) == [
        reference.predict_proba_one(x) for x in probe
    ]


def test_a_refusal_in_one_copy_mode_is_returned_and_not_counted() -> None:
    twin = TwinModel(Picky(), examples=3)
    assert isinstance(twin.learn({}, None), ValueError)
    assert twin.learn({}, True) is None and twin.examples == 4


def _follow(rules: FollowRules, model: Any, data: list[LabelledExample], start: int) -> Any:
    """Feed ``data[start:]`` (offset = index) through ``rules`` into ``model``."""
    for offset in range(start, len(data)):
        row = data[offset]
        if rules.admit(offset, row) == ADMIT:
            model.learn_one(dict(row.features), row.label)
    return model


def test_rules_know_a_later_snapshot_of_the_same_state() -> None:
    data = [example(i, x, y) for i, (x, y) in enumerate(rows(60))]
    data[20] = data[3]  # a duplicate: skipped, not counted
    data[30] = example(30, {"x0": 99.0, "x1": 1.0, "x2": 1.0}, True)  # out of range: skipped
    rules = FollowRules(point(next_offset=0, example_count=0, learner_id="L"))
    for offset, row in enumerate(data):
        rules.admit(offset, row)
    assert rules.count == 58
    later = point(next_offset=40, example_count=38, learner_id="L")
    assert rules.passed(later)
    assert rules.passed(point(next_offset=0, example_count=0, learner_id="L"))
    assert not rules.passed(replace(later, example_count=39))  # not the state it had there
    assert not rules.passed(replace(later, learner_id="M"))  # another learner state
    assert not rules.passed(replace(later, config_version=2))
    assert not rules.passed(replace(later, next_offset=61, example_count=59))  # not reached


def test_a_refusal_corrects_the_count_for_later_positions() -> None:
    data = [example(i, x, y) for i, (x, y) in enumerate(rows(10))]
    rules = FollowRules(point(next_offset=0, example_count=0))
    for offset in range(5):
        rules.admit(offset, data[offset])
    rules.refused(data[4])
    for offset in range(5, 10):
        rules.admit(offset, data[offset])
    assert rules.count == 9
    assert rules.passed(point(next_offset=10, example_count=9))


def test_a_follower_passed_a_later_snapshot_is_that_snapshot_learning_on() -> None:
    """What rebasing relies on: a model followed from snapshot A, once past snapshot B's
    offset with B's count, predicts exactly like B followed from its own offset."""
    data = [example(i, x, y) for i, (x, y) in enumerate(rows(900))]
    data[500] = data[450]  # a duplicate after the first snapshot
    learner = forest.ARFClassifier(n_models=3, seed=1)
    learner_rules = FollowRules(point(next_offset=0, example_count=0, learner_id="L"))
    snapshots = {}
    for offset, row in enumerate(data):
        if offset in (300, 700):
            copy = pickle.loads(pickle.dumps((learner, learner_rules.ids)))  # noqa: S301
            snapshots[offset] = (*copy, learner_rules.count)
        if learner_rules.admit(offset, row) == ADMIT:
            learner.learn_one(dict(row.features), row.label)
    (a, a_ids, a_count), (b, b_ids, b_count) = snapshots[300], snapshots[700]
    from_a = FollowRules(point(next_offset=300, example_count=a_count, learner_id="L", ids=a_ids))
    followed = _follow(from_a, a, data, 300)
    b_point = point(next_offset=700, example_count=b_count, learner_id="L", ids=b_ids)
    assert from_a.passed(b_point)
    from_b = FollowRules(b_point)
    caught_up = _follow(from_b, b, data, 700)
    probe = [x for x, _ in rows(200, seed=4)]
    assert [followed.predict_proba_one(x) for x in probe] == [
        caught_up.predict_proba_one(x) for x in probe
    ]
    assert from_a.count == from_b.count == learner_rules.count


class Seen:
    """A model that remembers what it learned, in order (picklable: the twin forks it)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.seen.append(y)


def test_settling_teaches_the_old_live_copy_before_new_examples_arrive() -> None:
    twin = TwinModel(Seen(), examples=0)
    for y in range(3):
        twin.add({}, y)
    assert twin.swap()
    learned: list[int] = []
    assert twin.settle(before=lambda: learned.append(0))  # the old live copy: 0..2 now
    assert len(learned) == 3
    twin.add({}, 3)
    assert twin.swap(before=lambda: learned.append(1))
    assert learned.count(1) == 1  # the swap learned only what is new
    assert twin.predict(lambda m: list(m.seen)) == [0, 1, 2, 3] and twin.examples == 4
    assert twin.settle()
    twin.add({}, 4)
    assert twin.swap()
    assert twin.predict(lambda m: list(m.seen)) == [0, 1, 2, 3, 4] and twin.examples == 5


def test_a_copy_held_by_a_reader_is_not_settled() -> None:
    twin = TwinModel(Seen(), examples=0)
    twin.add({}, 0)
    assert twin.swap()

    def read(model: Any) -> bool:
        twin.add({}, 1)
        assert twin.swap()  # the copy read here is now the standby
        return twin.settle()

    assert twin.predict(read) is False
    assert twin.settle()  # the reader left
    assert twin.predict(lambda m: list(m.seen)) == [0, 1]
