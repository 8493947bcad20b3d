"""What the learner keeps per partition of the valid topic, and what one example does.

Pure: no Kafka, no registry. :class:`PartitionState` is picklable; the edge checkpoints
it (signed) together with the partition's next offset, so a restored state continues
exactly where it stopped: no example lost, none learned twice.

The valid topic is not trusted: an example that breaks its stream's spec is refused
(:attr:`Handled.rejected`, for the edge to dead-letter) and neither learned nor
remembered, so the partition moves past it and a corrected example under the same id is
still learned.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from schemas import (
    DriftDetected,
    LabelledExample,
    MetricSnapshot,
    ReasonCode,
    RetrainRequested,
    StreamConfig,
    derive_id,
)
from schemas.lineage import Lineage, OffsetRange
from services.common.conformance import nonconformance
from services.learner.core import Outcome, StreamLearner

DEDUPE_WINDOW = 100_000
"""Example ids remembered per stream (``DRIFTLINE_LEARNER_DEDUPE_WINDOW``)."""


@dataclass
class StreamTrack:
    """One stream's learner and its bookkeeping within a partition."""

    learner: StreamLearner
    learner_id: str  # config version and first offset: names this learner in version keys
    config_version: int
    first_offset: int
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)  # ids, oldest first
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None
    last_offset: int = -1
    online_version: int | None = None
    checked_config_version: int | None = None  # the newest config compared with the learner

    def remember(self, example_id: str, limit: int) -> bool:
        """Note ``example_id``; False when it was already among the last ``limit`` noted.

        Redelivered examples come back within the validator's uncommitted stretch, so a
        bounded memory de-duplicates them while the checkpoint stays the same size however
        long the stream runs.
        """
        seen = self.seen
        if not isinstance(seen, OrderedDict):  # a checkpoint from before the bound
            seen = self.seen = OrderedDict.fromkeys(sorted(seen))
        if example_id in seen:
            return False
        seen[example_id] = None
        while len(seen) > limit:
            seen.popitem(last=False)  # O(1); deleting a plain dict's first key is not
        return True

    def lineage(self, topic: str, partition: int) -> Lineage:
        """The offsets and event times this learner has learned from (half-open range)."""
        return Lineage(
            ranges=(
                OffsetRange(
                    topic=topic,
                    partition=partition,
                    start=self.first_offset,
                    end=self.last_offset + 1,
                ),
            ),
            event_time_start=self.first_event_time,
            event_time_end=self.last_event_time,
            example_count=self.learner.examples_seen,
        )


@dataclass(frozen=True)
class Handled:
    """What one record did: events to publish and whether an online version is due."""

    stream: str
    learned: bool
    duplicate: bool = False
    outcome: Outcome | None = None
    drift: tuple[DriftDetected, ...] = ()
    metrics: MetricSnapshot | None = None
    retrain: RetrainRequested | None = None
    version_due: bool = False
    rebuilt: bool = False
    rejected: tuple[ReasonCode, str] | None = None
    """Why the example was refused (it breaks the stream's spec), with a detail."""


@dataclass
class PartitionState:
    """Every stream learner of one partition, its de-duplication ids and its position."""

    topic: str
    partition: int
    next_offset: int = 0
    streams: dict[str, StreamTrack] = field(default_factory=dict)
    duplicates: int = 0

    def handle(
        self,
        example: LabelledExample,
        *,
        offset: int,
        config: StreamConfig,
        metrics_every: int | None = None,
        dedupe_window: int = DEDUPE_WINDOW,
    ) -> Handled:
        """Learn one example at ``offset`` (test-then-train), de-duplicated by example id
        among the stream's last ``dedupe_window`` examples.

        An example that breaks ``config.spec`` is refused (``rejected``): not learned,
        not remembered. A config whose spec or model differs from the learner's starts a
        new learner. An exception from the model (River refusing a value) propagates with
        the example not remembered and not counted; the position moves past it either way.
        """
        self.next_offset = offset + 1
        problem = nonconformance(example, config.spec)
        if problem is not None:
            return Handled(stream=example.stream, learned=False, rejected=problem)
        track = self.streams.get(example.stream)
        rebuilt = False
        if track is None or (
            track.checked_config_version != config.version
            and _needs_rebuild(track.learner.config, config)
        ):
            track = StreamTrack(
                learner=StreamLearner(config, metrics_every=metrics_every),
                learner_id=f"c{config.version}-o{offset}",
                config_version=config.version or 0,
                first_offset=offset,
                online_version=track.online_version if track else None,
            )
            self.streams[example.stream] = track
            rebuilt = True
        track.checked_config_version = config.version
        if not track.remember(example.example_id, dedupe_window):
            self.duplicates += 1
            return Handled(stream=example.stream, learned=False, duplicate=True)
        try:
            outcome = track.learner.process(example.features, example.label)
        except Exception:
            track.seen.pop(example.example_id, None)  # not learned: not a duplicate later
            raise
        track.last_offset = offset
        track.first_event_time = track.first_event_time or example.event_time
        track.last_event_time = example.event_time
        drift = tuple(
            DriftDetected(
                event_id=derive_id(
                    f"{example.stream}/{track.learner_id}/{a.example_count}/{a.kind}/"
                    f"{a.detector}/{a.feature}",
                    "drift",
                ),
                stream=example.stream,
                kind=a.kind,
                detector=a.detector,
                feature=a.feature,
                topic=self.topic,
                partition=self.partition,
                offset=offset,
                event_time=example.event_time,
                example_count=a.example_count,
                model_version=track.online_version,
                statistics=a.statistics,
            )
            for a in outcome.alarms
        )
        snapshot = None
        if outcome.snapshot is not None:
            snapshot = MetricSnapshot(
                event_id=derive_id(
                    f"{example.stream}/{track.learner_id}/{outcome.example_count}", "metrics"
                ),
                stream=example.stream,
                model=example.stream,
                version=track.online_version,
                source="learner",
                role="online",
                values=outcome.snapshot.values,
                window=outcome.snapshot.window,
                example_count=outcome.example_count,
                event_time=example.event_time,
            )
        retrain = None
        if outcome.retrain_due:
            retrain = RetrainRequested(
                event_id=derive_id(
                    f"{example.stream}/{track.learner_id}/{outcome.example_count}", "retrain"
                ),
                stream=example.stream,
                window=config.policy.retrain.window,
                requested_by="learner",
                reason=(
                    f"scheduled: {config.policy.retrain.every} examples since the last "
                    f"drift or scheduled run (example {outcome.example_count})"
                ),
            )
        return Handled(
            stream=example.stream,
            learned=True,
            outcome=outcome,
            drift=drift,
            metrics=snapshot,
            retrain=retrain,
            version_due=outcome.version_due,
            rebuilt=rebuilt,
        )

    def version_key(self, stream: str) -> str:
        """The idempotency key of the stream's online version at its current count.

        It names the partition: two states of one stream (on two partitions, after the
        valid topic grew) never share a key, so the registry never hands one the
        other's version.
        """
        track = self.streams[stream]
        return (
            f"learner/{stream}/{self.topic}/{self.partition}/{track.learner_id}/"
            f"{track.learner.examples_seen}"
        )


def _needs_rebuild(current: StreamConfig, new: StreamConfig) -> bool:
    return current.spec != new.spec or current.model != new.model
