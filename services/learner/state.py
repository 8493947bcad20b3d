"""What the learner keeps per partition of the valid topic, and what one example does.

Pure: no Kafka, no registry. The edge checkpoints each stream's :class:`StreamTrack`
(signed) with the offset of the next record it has not learned, only for streams that
changed since their last checkpoint (:attr:`PartitionState.changed`) and not necessarily
all of them at once, then a small :class:`PartitionMark`: the partition's position, held
back to the first record of any stream whose change is not saved yet.
:meth:`PartitionState.resume` rebuilds the state from them: the partition restarts at
the smallest offset among its streams and the mark, and each stream skips what it
already learned, so no example is lost and none learned twice.

The valid topic is not trusted: an example that breaks its stream's spec is refused
(:attr:`Handled.rejected`, for the edge to dead-letter) and neither learned nor
remembered, so the partition moves past it and a corrected example under the same id is
still learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
from services.common.example_ids import IdWindow
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
    seen: IdWindow = field(default_factory=IdWindow)  # ids (as digests), oldest first
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None
    last_offset: int = -1
    online_version: int | None = None
    checked_config_version: int | None = None  # the newest config compared with the learner
    resume_at: int = 0
    """Records of this stream below this offset are already learned (after a restore)."""
    duplicates: int = 0  # redeliveries skipped

    def remember(self, example_id: str, limit: int) -> bool:
        """Note ``example_id``; False when it was already among the last ``limit`` noted.

        Redelivered examples come back within the validator's uncommitted stretch, so a
        bounded memory de-duplicates them while the checkpoint stays the same size however
        long the stream runs.
        """
        return self.ids().remember(example_id, limit)

    def ids(self) -> IdWindow:
        """The id window, converted from an older checkpoint's layout on first use (an
        OrderedDict of ids, oldest first, or before the bound a set)."""
        seen: Any = self.seen
        if isinstance(seen, IdWindow):
            return seen
        window = self.seen = IdWindow(seen if isinstance(seen, dict) else sorted(seen))
        return window

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
    reconfigured: bool = False
    """A newer config version applies to the learner without a rebuild (its followers
    pause at that version until the next online snapshot: take one now)."""
    rejected: tuple[ReasonCode, str] | None = None
    """Why the example was refused (it breaks the stream's spec), with a detail."""


@dataclass(frozen=True)
class PartitionMark:
    """The partition-wide part of a checkpoint, saved after its streams' checkpoints.

    ``next_offset`` is no later than the first record of any stream whose change was
    not saved, so every stream whose checkpoint is older than the mark had no record in
    between: its state holds up to ``next_offset`` as well.
    """

    topic: str
    partition: int
    next_offset: int
    duplicates: int = 0
    """Redeliveries counted by no stream's checkpoint (those of a whole-partition one)."""


@dataclass
class PartitionState:
    """Every stream learner of one partition, its de-duplication ids and its position."""

    topic: str
    partition: int
    next_offset: int = 0
    streams: dict[str, StreamTrack] = field(default_factory=dict)
    duplicates: int = 0
    changed: dict[str, int] = field(default_factory=dict)
    """Streams whose state changed since their last checkpoint: the offset of the first
    record that changed it."""
    must_save: set[str] = field(default_factory=set)
    """Streams restored from a whole-partition checkpoint: saved at the next checkpoint
    whatever its cadence (the mark supersedes the whole-partition checkpoint)."""

    @classmethod
    def resume(
        cls,
        topic: str,
        partition: int,
        *,
        mark: PartitionMark | PartitionState | None,
        streams: Mapping[str, tuple[StreamTrack, int]],
    ) -> PartitionState | None:
        """The state restored from a partition's checkpoints (None: there are none).

        ``streams``: each stream's newest checkpoint and the offset stored with it;
        ``mark``: the partition's newest mark, or a whole-partition state as checkpointed
        before checkpoints were per stream (its streams must then be saved by the next
        checkpoint, which supersedes it; a stream's own checkpoint wins when newer).
        ``next_offset`` is where to seek: the smallest offset among the streams, a
        stream with no checkpoint counting as at the mark (at 0 without a mark).

        >>> PartitionState.resume("t", 0, mark=None, streams={}) is None
        True
        >>> PartitionState.resume("t", 0, mark=PartitionMark("t", 0, 7), streams={}).next_offset
        7
        """
        tracks: dict[str, tuple[StreamTrack, int]] = {}
        floor = 0
        duplicates = 0
        changed: dict[str, int] = {}
        if isinstance(mark, PartitionState):  # one checkpoint per partition (before)
            tracks = {s: (t, mark.next_offset) for s, t in mark.streams.items()}
            changed = dict.fromkeys(mark.streams, mark.next_offset)
            duplicates = mark.duplicates
        elif mark is not None:
            floor = mark.next_offset
            duplicates = mark.duplicates
        for stream, (track, offset) in streams.items():
            if stream not in tracks or offset >= tracks[stream][1]:
                tracks[stream] = (track, offset)
                changed.pop(stream, None)
        if mark is None and not tracks:
            return None
        state = cls(topic, partition, duplicates=duplicates, changed=changed)
        state.must_save = set(changed)
        for stream, (track, offset) in tracks.items():
            track.ids()
            track.resume_at = max(offset, floor)
            state.streams[stream] = track
            state.duplicates += track.duplicates
        # A stream with no checkpoint yet (first seen in the round a crash cut short) is
        # at the mark: every stream seen before it was saved before it.
        unsaved = mark.next_offset if mark is not None else 0
        state.next_offset = min([unsaved, *(t.resume_at for t in state.streams.values())])
        return state

    def handle(
        self,
        example: LabelledExample,
        *,
        offset: int,
        config: StreamConfig,
        metrics_every: int | None = None,
        dedupe_window: int = DEDUPE_WINDOW,
        first_version_at: int = 0,
    ) -> Handled:
        """Learn one example at ``offset`` (test-then-train), de-duplicated by example id
        among the stream's last ``dedupe_window`` examples. A new stream's learner has
        its first online version due at ``first_version_at`` examples (see
        :class:`~services.learner.core.StreamLearner`).

        An example that breaks ``config.spec`` is refused (``rejected``): not learned,
        not remembered. A config whose spec or model differs from the learner's starts a
        new learner. An exception from the model (River refusing a value) propagates with
        the example not remembered and not counted; the position moves past it either way.
        """
        self.next_offset = offset + 1
        track = self.streams.get(example.stream)
        if track is not None and offset < track.resume_at:
            # Learned before the restore (the partition resumed at another stream's
            # offset): skipped like a redelivery.
            return Handled(stream=example.stream, learned=False, duplicate=True)
        problem = nonconformance(example, config.spec)
        if problem is not None:
            return Handled(stream=example.stream, learned=False, rejected=problem)
        rebuilt = False
        if track is None or (
            track.checked_config_version != config.version
            and _needs_rebuild(track.learner.config, config)
        ):
            track = StreamTrack(
                learner=StreamLearner(
                    config, metrics_every=metrics_every, first_version_at=first_version_at
                ),
                learner_id=f"c{config.version}-o{offset}",
                config_version=config.version or 0,
                first_offset=offset,
                online_version=track.online_version if track else None,
            )
            self.streams[example.stream] = track
            self.changed.setdefault(example.stream, offset)
            rebuilt = True
        reconfigured = False
        if track.checked_config_version != config.version:
            reconfigured = not rebuilt and track.online_version is not None
            track.checked_config_version = config.version
            self.changed.setdefault(example.stream, offset)
        if not track.remember(example.example_id, dedupe_window):
            self.duplicates += 1
            track.duplicates += 1
            self.changed.setdefault(example.stream, offset)
            return Handled(stream=example.stream, learned=False, duplicate=True)
        self.changed.setdefault(example.stream, offset)
        try:
            outcome = track.learner.process(example.features, example.label)
        except Exception:
            track.ids().forget(example.example_id)  # not learned: not a duplicate later
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
            reconfigured=reconfigured,
        )

    def saved(self, streams: Iterable[str]) -> None:
        """Note that ``streams`` were checkpointed as they are now."""
        for stream in streams:
            self.changed.pop(stream, None)
            self.must_save.discard(stream)

    def mark(self) -> PartitionMark:
        """The partition-wide part of a checkpoint, saved after the streams': the
        position, held back to the first record of any change not saved (and the
        redeliveries no stream counts: those a whole-partition checkpoint counted)."""
        counted = sum(t.duplicates for t in self.streams.values())
        position = min([self.next_offset, *self.changed.values()])
        return PartitionMark(self.topic, self.partition, position, self.duplicates - counted)

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
