"""What the demo has seen on the topics, folded from events (pure: no Kafka).

>>> from schemas import LabelledExample
>>> from datetime import UTC, datetime
>>> state = DemoState(stream="s")
>>> state.expect("e1", 0)
>>> ex = LabelledExample(stream="s", example_id="e1", features={"a": 1.0}, label=True,
...                      event_time=datetime(2026, 1, 1, tzinfo=UTC))
>>> state.apply(ex)
>>> state.valid_ids, state.unaccounted()
({'e1'}, set())
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from schemas import LabelledExample
from schemas.base import Event
from schemas.dead_letter import DeadLetter
from schemas.drift import DriftDetected, RetrainRequested
from schemas.fleet import ModelLoaded, ModelLoadFailed
from schemas.metrics import MetricSnapshot
from schemas.models import AliasMoved, AliasReason, ModelVersionPublished
from schemas.predictions import Prediction


@dataclass(frozen=True)
class Swap:
    """A serving replica loaded a new champion; ``index`` is the first example it answered."""

    version: int
    replica_id: str
    load_ms: float
    index: int | None


@dataclass(frozen=True)
class Answer:
    """One served answer: what it said, which version, when (record time, ms) and how many
    examples of the stream the answering model had learned (None: not told)."""

    prediction: Any
    version: int
    at_ms: int | None
    learned_examples: int | None = None


@dataclass
class DemoState:
    """Counts, ids and events of one stream, in arrival order."""

    stream: str
    index_of: dict[str, int] = field(default_factory=dict)
    garbage_sent: int = 0
    valid_ids: set[str] = field(default_factory=set)
    valid_messages: int = 0
    rejected_ids: set[str] = field(default_factory=set)
    rejected_unreadable: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    drifts: list[DriftDetected] = field(default_factory=list)
    retrains: list[RetrainRequested] = field(default_factory=list)
    versions: dict[int, ModelVersionPublished] = field(default_factory=dict)
    alias_moves: list[AliasMoved] = field(default_factory=list)
    loads: list[ModelLoaded] = field(default_factory=list)
    load_failures: list[ModelLoadFailed] = field(default_factory=list)
    answered: Counter[int] = field(default_factory=Counter)
    first_answer: dict[int, int] = field(default_factory=dict)
    served: list[MetricSnapshot] = field(default_factory=list)
    learner: list[MetricSnapshot] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    """The first served answer per example id."""
    valid_order: list[str] = field(default_factory=list)
    """Valid example ids in the order of the valid topic (the order the loop learned)."""
    valid_at: dict[str, int | None] = field(default_factory=dict)
    """Record time (ms) of each valid example: when its label reached the loop."""
    _seen_events: set[str] = field(default_factory=set)

    def expect(self, example_id: str, index: int) -> None:
        """Record that the example at ``index`` of the stream was produced."""
        self.index_of[example_id] = index

    def apply(self, event: Event, at_ms: int | None = None) -> None:
        """Fold one event in (``at_ms``: its record time); a redelivered event (same
        ``event_id``) counts once."""
        key = str(event.event_id)
        if key in self._seen_events:
            return
        self._seen_events.add(key)
        if isinstance(event, LabelledExample):
            if event.stream == self.stream:
                self.valid_messages += 1
                if event.example_id not in self.valid_ids:
                    self.valid_order.append(event.example_id)
                    self.valid_at[event.example_id] = at_ms
                self.valid_ids.add(event.example_id)
        elif isinstance(event, DeadLetter):
            self._dead(event)
        elif isinstance(event, DriftDetected):
            if event.stream == self.stream:
                self.drifts.append(event)
        elif isinstance(event, RetrainRequested):
            if event.stream == self.stream:
                self.retrains.append(event)
        elif isinstance(event, ModelVersionPublished):
            if event.model == self.stream:
                self.versions[event.version] = event
        elif isinstance(event, AliasMoved):
            if event.model == self.stream:
                self.alias_moves.append(event)
        elif isinstance(event, ModelLoaded):
            if event.model == self.stream:
                self.loads.append(event)
        elif isinstance(event, ModelLoadFailed):
            if event.model == self.stream:
                self.load_failures.append(event)
        elif isinstance(event, Prediction):
            self._answer(event, at_ms)
        elif isinstance(event, MetricSnapshot) and event.stream == self.stream:
            (self.served if event.source == "evaluator" else self.learner).append(event)

    def _dead(self, letter: DeadLetter) -> None:
        self.dead_reasons[letter.reason.value] += 1
        if letter.example_id is not None and letter.example_id in self.index_of:
            self.rejected_ids.add(letter.example_id)
        elif letter.example_id is None:
            self.rejected_unreadable += 1

    def _answer(self, prediction: Prediction, at_ms: int | None) -> None:
        if prediction.stream != self.stream:
            return
        version = prediction.answer.version
        self.answered[version] += 1
        if prediction.example_id not in self.answers:
            self.answers[prediction.example_id] = Answer(
                prediction.answer.prediction, version, at_ms, prediction.answer.learned_examples
            )
        index = self.index_of.get(prediction.example_id)
        if index is not None and (
            version not in self.first_answer or index < self.first_answer[version]
        ):
            self.first_answer[version] = index

    # -- derived views ----------------------------------------------------------------

    @property
    def produced(self) -> int:
        """Distinct example ids produced (well-formed JSON; garbage counted apart)."""
        return len(self.index_of)

    def unaccounted(self) -> set[str]:
        """Produced ids that are neither valid nor rejected (empty when nothing is lost)."""
        return set(self.index_of) - self.valid_ids - self.rejected_ids

    def alias(self, name: str) -> int | None:
        """Where alias ``name`` points now, from the alias-moved events."""
        for move in reversed(self.alias_moves):
            if move.alias == name:
                return move.to_version
        return None

    def promotions(self) -> list[AliasMoved]:
        """Champion moves to a batch version (by the trainer or the evaluator)."""
        return [
            m
            for m in self.alias_moves
            if m.alias == "champion"
            and m.reason is AliasReason.PROMOTED
            and m.to_version is not None
        ]

    def swaps(self) -> list[Swap]:
        """Promoted champion versions that serving loaded (online updates not counted)."""
        promoted = {m.to_version for m in self.promotions()}
        out: list[Swap] = []
        seen: set[int] = set()
        for load in self.loads:
            if load.alias == "champion" and load.version in promoted and load.version not in seen:
                seen.add(load.version)
                out.append(
                    Swap(
                        load.version,
                        load.replica_id,
                        load.load_ms,
                        self.first_answer.get(load.version),
                    )
                )
        return out

    def served_accuracy(self, metric: str = "accuracy") -> tuple[int | None, float | None]:
        """The served model's version and rolling ``metric`` in the latest ``served``
        snapshot."""
        for snap in reversed(self.served):
            if snap.role == "served":
                value = snap.values.get(f"rolling_{metric}", snap.values.get(metric))
                return snap.version, value
        return None, None
