"""The topic catalogue: the only place topic names live.

Each topic maps to one event class (or a union discriminated by ``event_type``), a key,
a partition count and its configs. Names are given without the prefix; :class:`Topics`
applies one.

>>> t = Topics("test-1.")
>>> t.name("examples.raw")
'test-1.examples.raw'
>>> CATALOGUE["models"].cleanup
'compact'
>>> sorted(c.__name__ for c in CATALOGUE["drift"].event_classes)
['DriftDetected', 'RetrainRequested']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.base import Event
from schemas.dead_letter import DeadLetter
from schemas.drift import DriftDetected, DriftEvent, RetrainRequested
from schemas.examples import LabelledExample
from schemas.fleet import AckEvent, ModelLoaded, ModelLoadFailed
from schemas.metrics import MetricSnapshot
from schemas.models import AliasMoved, ModelEvent, ModelVersionPublished
from schemas.predictions import Prediction, PredictionRequest, ShadowPair
from schemas.streams import StreamConfig

DAY_MS = 24 * 3600 * 1000
# Partitions of the topics keyed by stream: the unit of scale-out for validators,
# learners and serving. Faust apps pin this same number (see services.common.faust_app).
STREAM_PARTITIONS = 4


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the catalogue."""

    suffix: str
    event: Any  # an Event subclass or an Annotated union of them
    event_classes: tuple[type[Event], ...]
    key: str
    partitions: int
    cleanup: Literal["delete", "compact"]
    description: str
    configs: dict[str, str] = field(default_factory=dict)

    def all_configs(self) -> dict[str, str]:
        """Topic configs to set on creation, cleanup policy included."""
        return {"cleanup.policy": self.cleanup, **self.configs}


def _spec(
    suffix: str,
    classes: tuple[type[Event], ...],
    key: str,
    partitions: int,
    cleanup: Literal["delete", "compact"],
    description: str,
    event: Any = None,
    **configs: str,
) -> TopicSpec:
    return TopicSpec(
        suffix=suffix,
        event=event if event is not None else classes[0],
        event_classes=classes,
        key=key,
        partitions=partitions,
        cleanup=cleanup,
        description=description,
        configs={k.replace("_", "."): v for k, v in configs.items()},
    )


_COMPACT = {"min_cleanable_dirty_ratio": "0.1", "segment_ms": str(3600 * 1000)}

CATALOGUE: dict[str, TopicSpec] = {
    spec.suffix: spec
    for spec in (
        _spec(
            "examples.raw",
            (LabelledExample,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "labelled examples from producers",
            retention_ms=str(7 * DAY_MS),
        ),
        _spec(
            "examples.valid",
            (LabelledExample,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "validated examples (learner, trainer replay, evaluator)",
            retention_ms=str(30 * DAY_MS),
        ),
        _spec(
            "examples.dead",
            (DeadLetter,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "rejected examples with a reason code",
            retention_ms=str(30 * DAY_MS),
        ),
        _spec(
            "events.dead",
            (DeadLetter,),
            "source topic",
            1,
            "delete",
            "other events a consumer could not handle",
            retention_ms=str(30 * DAY_MS),
        ),
        _spec(
            "streams",
            (StreamConfig,),
            "stream",
            1,
            "compact",
            "stream configs (spec, model, policy), one version after another",
            **_COMPACT,
        ),
        _spec(
            "drift",
            (DriftDetected, RetrainRequested),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "drift detected and retrain requested",
            event=DriftEvent,
            retention_ms=str(30 * DAY_MS),
        ),
        _spec(
            "models",
            (ModelVersionPublished, AliasMoved),
            "<model>:v<version> | <model>@<alias>",
            1,
            "compact",
            "model versions and alias moves",
            event=ModelEvent,
            **_COMPACT,
        ),
        _spec(
            "models.acks",
            (ModelLoaded, ModelLoadFailed),
            "replica id",
            1,
            "delete",
            "serving replicas' load acknowledgements",
            event=AckEvent,
            retention_ms=str(7 * DAY_MS),
        ),
        _spec(
            "predictions.requests",
            (PredictionRequest,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "prediction requests from clients",
            retention_ms=str(7 * DAY_MS),
        ),
        _spec(
            "predictions",
            (Prediction,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "predictions stamped with their model version",
            retention_ms=str(7 * DAY_MS),
        ),
        _spec(
            "shadow",
            (ShadowPair,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "champion/challenger pairs on live requests",
            retention_ms=str(7 * DAY_MS),
        ),
        _spec(
            "metrics",
            (MetricSnapshot,),
            "stream",
            STREAM_PARTITIONS,
            "delete",
            "metric snapshots from the learner and the evaluator",
            retention_ms=str(30 * DAY_MS),
        ),
    )
}


class Topics:
    """Topic names under one prefix (``DRIFTLINE_TOPIC_PREFIX``)."""

    def __init__(self, prefix: str = "driftline.") -> None:
        self.prefix = prefix

    def name(self, suffix: str) -> str:
        """The full name of a catalogue topic; KeyError for one not in the catalogue."""
        return self.prefix + CATALOGUE[suffix].suffix

    def spec_of(self, name: str) -> TopicSpec:
        """The catalogue entry behind a full topic name."""
        if not name.startswith(self.prefix) or name[len(self.prefix) :] not in CATALOGUE:
            raise KeyError(f"{name!r} is not a driftline topic under prefix {self.prefix!r}")
        return CATALOGUE[name[len(self.prefix) :]]

    def all(self) -> dict[str, TopicSpec]:
        """Every catalogue topic by its full name."""
        return {self.prefix + s: spec for s, spec in CATALOGUE.items()}


def event_classes() -> tuple[type[Event], ...]:
    """Every event class of the contract, each once, in catalogue order."""
    seen: dict[type[Event], None] = {}
    for spec in CATALOGUE.values():
        for cls in spec.event_classes:
            seen.setdefault(cls, None)
    return tuple(seen)
