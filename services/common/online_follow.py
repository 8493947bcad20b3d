"""Keeping a served online model as fresh as the learner: the pure part.

An online snapshot's predictor carries a :class:`FollowPoint`: where in ``examples.valid``
the learner stood when it took the snapshot (topic, the stream's partition, the next
offset), how many examples the model had learned, the config (spec) it learned with and
its de-duplication window. A follower (serving, the evaluator) loads the snapshot and
feeds the same records through :class:`FollowRules`, which skip exactly what the learner
skips (other streams, ids already learned, rows that break the spec) and learn the rest
with the same ``learn_one`` on the same pipeline, so its predictions equal the learner's.

Learning never blocks a prediction: :class:`TwinModel` holds two copies of the model.
Readers use the live one; the standby learns what it lacks and then becomes live; the
old live copy catches up at the next swap, once no reader holds it (it is skipped, never
waited for). A reader marks the copy it uses in a set (atomic under the GIL) and re-reads
the copy's ``live`` flag after marking it, so a swap and a read can never both miss each
other.

>>> from river import linear_model
>>> from schemas import LabelledExample
>>> from schemas.streams import Spec
>>> from datetime import datetime, timezone
>>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
...                             "label": {"kind": "class", "classes": [False, True]}})
>>> point = FollowPoint(stream="s", topic="t", partition=0, next_offset=0,
...                     example_count=0, config_version=1, spec=spec)
>>> rules = FollowRules(point)
>>> twin = TwinModel(linear_model.LogisticRegression(), examples=0)
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> rows = [LabelledExample(stream="s", example_id=str(i % 30), features={"x": float(i % 2)},
...                         label=i % 2 == 1, event_time=t) for i in range(40)]
>>> for offset, row in enumerate(rows):
...     if rules.admit(offset, row) == ADMIT:
...         twin.add(dict(row.features), row.label, row.example_id)
>>> twin.swap(), twin.examples, rules.skipped["duplicate"]
(True, 30, 10)
>>> twin.predict(lambda model: model.predict_one({"x": 1.0}))
True
"""

from __future__ import annotations

import pickle
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from schemas import LabelledExample
from schemas.streams import Spec
from services.common.conformance import nonconformance
from services.common.example_ids import IdWindow
from services.common.predictor import Predictor

__all__ = [
    "ADMIT",
    "OTHER_STREAM",
    "PAUSE",
    "SKIP",
    "FollowPoint",
    "FollowRules",
    "FollowingPredictor",
    "TwinModel",
]

_T = TypeVar("_T")

MARKS = 20_000
"""Positions a :class:`FollowRules` remembers with its example count there."""

ADMIT: Final = "admit"  # learn it
SKIP: Final = "skip"  # the learner does not learn it either (duplicate, nonconforming)
OTHER_STREAM: Final = "other_stream"  # not this stream's record
PAUSE: Final = "pause"  # judged by a newer config than the snapshot's: wait for a new one


@dataclass
class FollowPoint:
    """Where an online snapshot stands in ``examples.valid``: what a follower needs to
    learn on from it exactly as the learner does (pickled with the snapshot)."""

    stream: str
    topic: str
    partition: int
    next_offset: int
    """The first record the snapshot has not seen (its learner's position)."""
    example_count: int
    """Examples of the stream the snapshot's model has learned."""
    config_version: int
    """The stream config version the learner judged with (a newer one pauses a follower
    until the next snapshot)."""
    spec: Spec
    ids: IdWindow = field(default_factory=IdWindow)
    """The learner's de-duplication window at the snapshot (digests, oldest first)."""
    dedupe_window: int = 100_000
    learner_id: str = ""
    """Names the learner state (config version and first offset): a new one is a rebuild."""


class FollowRules:
    """The learner's admission rules for one stream's records, from a snapshot on.

    :meth:`admit` says what to do with the record at ``offset``; call it in offset order
    from ``point.next_offset``. An admitted record's id is remembered; call
    :meth:`refused` when the model then raises on it (the learner forgets it too).
    ``count`` is the stream's examples learned (the learner's count); the count at each
    of the last ``MARKS`` positions is remembered, so :meth:`passed` can tell whether a
    later snapshot of the same learner state is what these rules' model was there.
    """

    def __init__(self, point: FollowPoint) -> None:
        self.point = point
        self.ids = pickle.loads(pickle.dumps(point.ids))  # noqa: S301 - our own bytes
        self.skipped: Counter[str] = Counter()
        self.position = point.next_offset
        self.count = point.example_count
        self._marks: deque[tuple[int, int]] = deque([(self.position, self.count)], maxlen=MARKS)

    def passed(self, other: FollowPoint) -> bool:
        """``other`` is a snapshot of the same learner state (stream, partition, learner,
        config and de-duplication window) at a position these rules have passed with
        exactly ``other``'s example count: a model that followed them from there is
        ``other``'s model plus what it learned since (``learn_one`` is deterministic)."""
        mine = self.point
        same = (
            other.stream == mine.stream
            and other.topic == mine.topic
            and other.partition == mine.partition
            and other.learner_id == mine.learner_id
            and other.config_version == mine.config_version
            and other.dedupe_window == mine.dedupe_window
        )
        wanted = (other.next_offset, other.example_count)
        return same and any(mark == wanted for mark in self._marks.copy())

    def undecodable(self, offset: int) -> None:
        """The record at ``offset`` cannot be decoded: the learner letters it, skips it."""
        self.position = offset + 1
        self._marks.append((self.position, self.count))

    def admit(self, offset: int, example: LabelledExample) -> str:
        """``ADMIT``, ``SKIP``, ``OTHER_STREAM`` or ``PAUSE`` (the position stays before
        a paused record, so it is judged again by the next snapshot's follower)."""
        verdict = self._verdict(offset, example)
        if verdict != PAUSE:
            self._marks.append((self.position, self.count))
        return verdict

    def _verdict(self, offset: int, example: LabelledExample) -> str:
        point = self.point
        if example.stream != point.stream:
            self.position = offset + 1
            return OTHER_STREAM
        version = example.spec_version
        if version is not None and version > point.config_version:
            self.skipped["paused"] += 1
            return PAUSE
        self.position = offset + 1
        if nonconformance(example, point.spec) is not None:
            self.skipped["nonconforming"] += 1
            return SKIP
        if not self.ids.remember(example.example_id, point.dedupe_window):
            self.skipped["duplicate"] += 1
            return SKIP
        self.count += 1
        return ADMIT

    def refused(self, example: LabelledExample) -> None:
        """The model raised on an admitted example: it is not learned (nor a duplicate,
        nor counted)."""
        self.ids.forget(example.example_id)
        self.skipped["refused"] += 1
        self.count -= 1


class _Copy:
    __slots__ = ("learned", "live", "model", "pending", "readers")

    def __init__(self, model: Any, learned: int) -> None:
        self.model = model
        self.learned = learned  # examples of the stream this copy has learned
        self.pending: list[tuple[dict[str, Any], Any, Any]] = []
        self.readers: set[object] = set()
        self.live = False


class TwinModel:
    """Two copies of one model: predictions from the live copy, learning on the other.

    :meth:`add` queues an example for both copies; :meth:`swap` teaches the standby
    what it lacks and makes it live, unless a reader still holds it (then it returns
    False and the next swap tries again). :meth:`predict` never waits. Until the first
    :meth:`add` (or :meth:`fork`) there is one copy, which :meth:`learn` teaches at once:
    for catching up before anyone reads, or for a caller that predicts in the same
    thread (half the work and memory).
    """

    def __init__(self, model: Any, *, examples: int) -> None:
        first = _Copy(model, examples)
        first.live = True
        self._live = first
        self._standby: _Copy | None = None
        self.refused = 0

    @property
    def examples(self) -> int:
        """Examples the live copy has learned (the stream's count)."""
        return self._live.learned

    @property
    def pending(self) -> int:
        """Examples queued that the live copy has not learned yet."""
        return len(self._live.pending)

    def learn(self, x: dict[str, Any], y: Any) -> Exception | None:
        """Learn one example on the only copy at once; returns the model's exception
        when it refused the example (not counted). Only while nobody else reads it."""
        if self._standby is not None:
            raise RuntimeError("two copies: queue with add() and swap()")
        try:
            self._live.model.learn_one(x, y)
        except Exception as exc:  # noqa: BLE001 - the learner refuses it the same way
            return exc
        self._live.learned += 1
        return None

    def fork(self) -> None:
        """Make the standby copy (a copy of the live one), if there is none yet."""
        if self._standby is None:
            live = self._live
            model = pickle.loads(pickle.dumps(live.model, 5))  # noqa: S301 - our own bytes
            self._standby = _Copy(model, live.learned)

    def add(self, x: dict[str, Any], y: Any, tag: Any = None) -> None:
        """Queue one admitted example for both copies (nothing is learned yet); ``tag``
        names it to :meth:`swap`'s ``on_error``."""
        self.fork()
        assert self._standby is not None  # noqa: S101 - fork made it
        item = (x, y, tag)
        self._live.pending.append(item)
        self._standby.pending.append(item)

    def swap(
        self,
        on_error: Callable[[Any, Exception], None] | None = None,
        before: Callable[[], None] | None = None,
    ) -> bool:
        """Teach the standby its queue and make it live; False when a reader still
        holds the standby (nothing changes) or there is nothing to learn.

        ``on_error(tag, exc)``: an example the model raised on, reported by the first
        copy that meets it; it is not counted as learned (the learner's rule).
        ``before()``: called before each example (a follower lets the requests in
        flight go first there, so a prediction never waits behind a run of learning).
        """
        standby = self._standby
        if standby is None or not standby.pending or standby.readers:
            return False
        first_new = len(standby.pending) - len(self._live.pending)
        for i, (x, y, tag) in enumerate(standby.pending):
            if before is not None:
                before()
            try:
                standby.model.learn_one(x, y)
            except Exception as exc:  # noqa: BLE001 - the learner refuses it the same way
                if on_error is not None and i >= first_new:
                    on_error(tag, exc)
            else:
                standby.learned += 1
        standby.pending = []
        standby.live = True
        old = self._live
        self._live = standby
        old.live = False  # readers who took it before now retry on the new copy
        self._standby = old
        return True

    def settle(self, before: Callable[[], None] | None = None) -> bool:
        """Teach the standby now what the live copy learned before it went live (rather
        than at the next swap), so the next swap learns only what is new: new examples
        reach readers after one ``learn_one`` each, not two. False when a reader still
        holds the standby (the next swap or settle does it)."""
        standby = self._standby
        if standby is None or standby.readers:
            return False
        known = len(standby.pending) - len(self._live.pending)  # the live copy has them
        for x, y, _ in standby.pending[:known]:
            if before is not None:
                before()
            try:
                standby.model.learn_one(x, y)
            except Exception:  # noqa: BLE001, S112 - the live copy reported it already
                continue
            standby.learned += 1
        del standby.pending[:known]
        return True

    def predict(self, use: Callable[[Any], _T]) -> _T:
        """``use(model)`` on the live copy, which no learning touches meanwhile."""
        return self.hold(use)[0]

    def hold(self, use: Callable[[Any], _T]) -> tuple[_T, int]:
        """``use(model)`` on the live copy, with how many examples that copy had learned."""
        token = object()
        while True:
            copy = self._live
            copy.readers.add(token)
            if copy.live:
                break
            copy.readers.discard(token)
        try:
            return use(copy.model), copy.learned
        finally:
            copy.readers.discard(token)


class FollowingPredictor(Predictor):
    """A snapshot's predictor whose model keeps learning: predictions come from the
    :class:`TwinModel`'s live copy (no lock), and :meth:`following` says which version
    it started from and how many examples the copy that answered this thread had
    learned.
    """

    def __init__(self, snapshot: Predictor, twin: TwinModel, *, base_version: int) -> None:
        self.__dict__.update(snapshot.__dict__)
        self.model = None  # every prediction goes through the twin
        self.twin = twin
        self.base_version = base_version
        self._answered = threading.local()

    def predict_many(self, xs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The live copy's labels for ``xs``."""
        if not xs:
            return []
        labels, self._answered.examples = self.twin.hold(
            lambda model: [model.predict_one(dict(x)) for x in xs]
        )
        return [self._river_label(label) for label in labels]

    def predict_proba_many(self, xs: Sequence[Mapping[str, Any]]) -> list[dict[str, float] | None]:
        """The live copy's class probabilities for ``xs`` (None for regression)."""
        if self.task != "class":
            return [None for _ in xs]
        probs, self._answered.examples = self.twin.hold(
            lambda model: [model.predict_proba_one(dict(x)) for x in xs]
        )
        return [{str(k): float(v) for k, v in p.items()} for p in probs]

    def following(self) -> dict[str, int]:
        """``base_version`` and ``learned_examples``: the stream's examples the model that
        last answered in this thread had learned, read once (else the live copy's)."""
        learned = getattr(self._answered, "examples", None)
        self._answered.examples = None  # read once: the next description is the next answer's
        return {
            "base_version": self.base_version,
            "learned_examples": self.twin.examples if learned is None else learned,
        }

    def __reduce__(self) -> Any:
        raise TypeError("a following predictor is live state: pickle its snapshot instead")
