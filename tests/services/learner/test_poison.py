"""No poison pills in the learner: a record that breaks its stream's spec, or that its model
refuses, is a dead letter with its reason; nothing of it is learned or remembered, and the
partition moves past it."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from schemas import DeadLetter, LabelledExample, StreamConfig
from services.common.codec import decode, encode
from services.common.settings import DriftlineSettings
from services.learner import app as learner_app
from services.learner.prequential import Prequential
from services.learner.settings import LearnerSettings
from services.learner.state import PartitionState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def config() -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": "s",
            "version": 1,
            "spec": {
                "features": [
                    {"name": "x1", "type": "number", "min": 0, "max": 100},
                    {"name": "x2", "type": "number"},
                ],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            "model": {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"},
            "policy": {"online_version_every": 1_000_000, "drift": {"data_drift": False}},
        }
    )


def example(i: int, **change: Any) -> LabelledExample:
    base = LabelledExample(
        stream="s",
        example_id=str(i),
        features={"x1": float(i % 100), "x2": float(i % 7)},
        label=i % 2,
        event_time=T0 + timedelta(seconds=i),
        spec_version=1,
    )
    return base.model_copy(update=change)


# (what is wrong, the change, the reason the letter gives)
BAD = [
    ("unknown class", {"label": 7}, "bad_label"),
    ("a string label", {"label": "1"}, "bad_label"),
    ("a string for a number", {"features": {"x1": "3", "x2": 1.0}}, "wrong_type"),
    ("a bool for a number", {"features": {"x1": True, "x2": 1.0}}, "wrong_type"),
    ("an extra feature", {"features": {"x1": 3.0, "x2": 1.0, "x3": 1.0}}, "unexpected_feature"),
    ("a missing feature", {"features": {"x1": 3.0}}, "missing_feature"),
    ("above the max", {"features": {"x1": 1e300, "x2": 1.0}}, "out_of_range"),
    ("NaN", {"features": {"x1": 3.0, "x2": math.nan}}, "non_finite"),
    ("infinity", {"features": {"x1": 3.0, "x2": -math.inf}}, "non_finite"),
    ("an int past float", {"features": {"x1": 3.0, "x2": 10**400}}, "non_finite"),
]


@pytest.mark.parametrize(("what", "change", "reason"), BAD, ids=[b[0] for b in BAD])
def test_an_example_breaking_the_spec_is_refused_not_learned_nor_remembered(
    what: str, change: dict[str, Any], reason: str
) -> None:
    state = PartitionState("valid", 0)
    for offset in range(20):
        assert state.handle(example(offset), offset=offset, config=config()).learned
    track = state.streams["s"]
    before = track.learner.snapshot()

    handled = state.handle(example(20, **change), offset=20, config=config())

    assert handled.rejected is not None and handled.rejected[0].value == reason, what
    assert not handled.learned and handled.outcome is None
    assert track.learner.examples_seen == 20 and track.learner.snapshot() == before
    assert "20" not in track.seen and track.last_offset == 19
    assert state.next_offset == 21  # the partition moves past it
    # a corrected example under the same id is learned, not taken for a duplicate
    assert state.handle(example(20), offset=21, config=config()).learned
    assert track.learner.examples_seen == 21


def test_a_first_example_breaking_the_spec_builds_no_learner() -> None:
    state = PartitionState("valid", 0)
    handled = state.handle(example(0, label=7), offset=0, config=config())
    assert handled.rejected is not None and state.streams == {} and state.next_offset == 1


class Refuses(Exception):
    """What a River model raising on a value stands for."""


def test_a_model_that_raises_leaves_count_metrics_and_ids_as_they_were() -> None:
    state = PartitionState("valid", 0)
    for offset in range(30):
        state.handle(example(offset), offset=offset, config=config())
    track = state.streams["s"]
    before = (track.learner.examples_seen, track.learner.snapshot(), list(track.seen))
    model = track.learner.model

    def refuse(x: dict[str, Any], y: Any) -> None:
        raise Refuses("no")

    model.learn_one = refuse  # type: ignore[method-assign]
    with pytest.raises(Refuses):
        state.handle(example(30), offset=30, config=config())
    assert (track.learner.examples_seen, track.learner.snapshot(), list(track.seen)) == before
    assert state.next_offset == 31 and track.last_offset == 29

    del model.learn_one  # the model takes values again
    assert state.handle(example(30), offset=31, config=config()).learned
    assert track.learner.examples_seen == 31


def test_prequential_scores_only_what_it_learned() -> None:
    """A regression label that is no number fails before the model or a metric changed."""
    from river import linear_model

    pq = Prequential(linear_model.LinearRegression(), task="number", window=10)
    pq.step({"x": 1.0}, 2.0)
    pq.step({"x": 2.0}, 4.0)
    before = (pq.snapshot(), pq.model.weights.copy())
    with pytest.raises(ValueError, match="could not convert"):
        pq.step({"x": 3.0}, "six")
    assert (pq.snapshot(), pq.model.weights) == before and pq.example_count == 2


# -- the edge: Learner._one with the Kafka clients replaced ------------------------------


class FakeConfigs:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.configs = {"s": config()}
        self.unread: dict[str, StreamConfig] = {}  # on the topic, not read yet
        self.asked: list[tuple[str, int | None]] = []

    def get(self, stream: str) -> StreamConfig | None:
        return self.configs.get(stream)

    def current(self, stream: str, *, at_least: int | None = None) -> StreamConfig | None:
        """As the real one: the topic read to its end (``unread``) before "unknown"."""
        self.asked.append((stream, at_least))
        if stream not in self.configs and stream in self.unread:
            self.configs[stream] = self.unread.pop(stream)
        return self.configs.get(stream)

    def refresh(self, timeout_ms: int = 0) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def learner(monkeypatch: pytest.MonkeyPatch) -> Iterator[learner_app.Learner]:
    monkeypatch.setattr(learner_app, "StreamConfigs", FakeConfigs)
    monkeypatch.setattr(learner_app, "open_producer", FakeProducer)
    monkeypatch.setattr(learner_app, "open_consumer", lambda *a, **k: SimpleNamespace())
    settings = DriftlineSettings.load(env={}, topic_prefix="p.")
    service = LearnerSettings(group_id=f"g-{uuid.uuid4().hex[:8]}")
    yield learner_app.Learner(settings, service, registry=None)  # type: ignore[arg-type]


def record(offset: int, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(
        topic="p.examples.valid", partition=0, offset=offset, key=b"s", value=value
    )


def raw(ex: LabelledExample) -> bytes:
    """The example as any producer may write it (NaN and Infinity as JSON literals; pydantic
    itself would write null)."""
    doc = ex.model_dump(mode="json") | {"features": ex.features, "label": ex.label}
    return json.dumps(doc).encode()


def letters(learner: learner_app.Learner) -> list[DeadLetter]:
    producer = learner.producer
    assert isinstance(producer, FakeProducer)
    out = [decode(v, DeadLetter) for t, _, v in producer.sent if t == "p.events.dead"]
    return [d for d in out if isinstance(d, DeadLetter)]


def sample(learner: learner_app.Learner, name: str, **labels: str) -> float | None:
    value = learner.metrics.registry.get_sample_value(f"driftline_{name}", labels)
    return None if value is None else float(value)


def test_the_edge_dead_letters_each_bad_record_with_its_reason_and_goes_on(
    learner: learner_app.Learner,
) -> None:
    state = PartitionState("p.examples.valid", 0)
    good = [example(i) for i in range(40)]
    values: list[bytes | None] = [encode(ex) for ex in good]
    bad: list[tuple[bytes | None, str]] = [
        (raw(example(100 + i, **change)), reason) for i, (_, change, reason) in enumerate(BAD)
    ]
    bad += [
        (b"{not json", "unparseable"),
        (json.dumps({"stream": "s", "example_id": "x"}).encode(), "contract_violation"),
        (encode(example(200).model_copy(update={"stream": "nobody"})), "unknown_stream"),
    ]
    for i, (value, _) in enumerate(bad):  # spread among the good ones
        values.insert(3 * i + 1, value)
    for offset, value in enumerate(values):
        learner._one(state, record(offset, value))
    learner._count_learned()  # what the run loop does after each poll

    got = letters(learner)
    assert [d.reason.value for d in got] == [reason for _, reason in bad]
    assert all(d.service == "learner" and d.source_topic == "p.examples.valid" for d in got)
    assert [d.original for d in got] == [value for value, _ in bad]
    assert got[0].stream == "s" and got[0].example_id == "100"
    assert state.next_offset == len(values)
    assert state.streams["s"].learner.examples_seen == len(good)
    assert sample(learner, "learner_examples_total", stream="s") == len(good)
    assert sample(learner, "learner_stream_examples", stream="s") == len(good)
    assert sample(learner, "learner_dead_letters_total", reason="bad_label") == 2


def test_the_edge_turns_a_model_exception_into_a_handler_error_letter(
    learner: learner_app.Learner,
) -> None:
    state = PartitionState("p.examples.valid", 0)
    for offset in range(10):
        learner._one(state, record(offset, encode(example(offset))))
    model = state.streams["s"].learner.model

    def refuse(x: dict[str, Any], y: Any) -> None:
        raise OverflowError("math range error")

    model.learn_one = refuse  # type: ignore[method-assign]
    learner._one(state, record(10, encode(example(10))))
    del model.learn_one
    learner._one(state, record(11, encode(example(11))))
    learner._count_learned()

    (letter,) = letters(learner)
    assert letter.reason.value == "handler_error" and letter.source_offset == 10
    assert "OverflowError" in letter.detail and letter.example_id == "10"
    assert state.next_offset == 12
    assert state.streams["s"].learner.examples_seen == 11
    assert sample(learner, "learner_stream_examples", stream="s") == 11


def test_the_examples_gauge_starts_from_a_restored_checkpoint(
    learner: learner_app.Learner,
) -> None:
    from kafka import TopicPartition

    state = PartitionState("p.examples.valid", 2)
    for offset in range(25):
        state.handle(example(offset), offset=offset, config=config())
    checkpoint = SimpleNamespace(state=state)
    learner.registry = SimpleNamespace(  # type: ignore[assignment]
        load_checkpoint=lambda **kw: checkpoint,  # a whole-partition checkpoint (before)
        load_checkpoints=lambda **kw: [],
    )
    learner.consumer = SimpleNamespace(seek=lambda tp, offset: None)

    learner.assigned([TopicPartition("p.examples.valid", 2)])
    assert sample(learner, "learner_stream_examples", stream="s") == 25
    assert sample(learner, "learner_examples_total", stream="s") is None  # none this run

    learner.checkpoint = lambda partitions, **kw: None  # type: ignore[method-assign]
    learner.revoked([TopicPartition("p.examples.valid", 2)])
    assert sample(learner, "learner_stream_examples", stream="s") is None  # its owner's now


def test_the_edge_learns_a_stream_whose_config_it_had_not_read_yet(
    learner: learner_app.Learner,
) -> None:
    # The validator accepted the example against a config this learner has not polled
    # yet (it started after the validator): it reads on instead of dead-lettering.
    configs = learner.configs
    assert isinstance(configs, FakeConfigs)
    late = config().model_copy(update={"stream": "late", "version": 3})
    configs.unread["late"] = late
    ex = example(0).model_copy(update={"stream": "late", "spec_version": 3})
    state = PartitionState("p.examples.valid", 0)
    learner._one(state, record(0, encode(ex)))
    learner._count_learned()

    assert letters(learner) == []
    assert configs.asked == [("late", 3)]
    assert state.streams["late"].learner.examples_seen == 1
