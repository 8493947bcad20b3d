"""The learner's checkpoints in the registry: their keys, what is due, saving a partition
and restoring it.

One checkpoint per (partition, stream) under ``KEY/streams/STREAM``, written only for the
streams that changed and are due, then the partition's small mark under ``KEY``, held back
to the first record of any change not saved yet (:meth:`PartitionState.mark`). Restore
reads them back into a :class:`PartitionState`. The Kafka side (flushing outputs before,
committing the marks' offsets after) stays with the edge.
"""

from __future__ import annotations

import hashlib

from services.learner.state import PartitionMark, PartitionState, StreamTrack
from services.registry.client import CheckpointItem, Registry

OWNER = "learner"
KEY_LIMIT = 300  # the registry's checkpoint key column


def partition_key(group: str, topic: str, partition: int) -> str:
    """The key of a partition's mark (before per-stream checkpoints: its whole state);
    its streams' checkpoints are under ``KEY/streams/``."""
    return f"{group}/{topic}/{partition}"


def stream_key(key: str, stream: str) -> str:
    """The key of a stream's checkpoint under the partition ``key``."""
    name = f"{key}/streams/{stream}"
    if len(name) <= KEY_LIMIT:
        return name
    return f"{key}/streams/#{hashlib.sha256(stream.encode()).hexdigest()}"  # name in meta


def restore(registry: Registry, *, key: str, topic: str, partition: int) -> PartitionState | None:
    """A partition's state from its newest mark and stream checkpoints (None: none)."""
    mark = registry.load_checkpoint(owner=OWNER, key=key)
    streams: dict[str, tuple[StreamTrack, int]] = {}
    for cp in registry.load_checkpoints(owner=OWNER, prefix=f"{key}/streams/"):
        stream = cp.meta.get("stream")
        if isinstance(cp.state, StreamTrack) and isinstance(stream, str):
            streams[stream] = (cp.state, int(cp.offsets[str(partition)]))
    state = mark.state if mark is not None else None
    return PartitionState.resume(
        topic,
        partition,
        mark=state if isinstance(state, PartitionMark | PartitionState) else None,
        streams=streams,
    )


class CheckpointSchedule:
    """Which changed streams are due for a checkpoint, and saving them with the mark.

    A changed stream is due when everything is asked (stop, revocation), when it must be
    saved (restored from a whole-partition checkpoint), when it learned ``every``
    examples since its last checkpoint, or when its change is ``interval_s`` old (seen
    changed by an earlier checkpoint): a stream that gets a few examples now and then is
    not written at every checkpoint.
    """

    def __init__(self, *, every: int, interval_s: float) -> None:
        self.every = every
        self.interval_s = interval_s
        self._changed_since: dict[tuple[int, str], float] = {}  # first seen changed
        self._saved_examples: dict[tuple[int, str], int] = {}  # examples at its last save

    def restored(self, state: PartitionState) -> None:
        """Note the examples each restored stream had at its checkpoint."""
        for stream, track in state.streams.items():
            self._saved_examples[state.partition, stream] = track.learner.examples_seen

    def forget(self, partition: int) -> None:
        """Drop what is known of a partition handed over."""
        for key in [k for k in self._saved_examples if k[0] == partition]:
            self._saved_examples.pop(key, None)
            self._changed_since.pop(key, None)

    def save(
        self,
        registry: Registry,
        key: str,
        state: PartitionState,
        *,
        everything: bool,
        now: float,
    ) -> PartitionMark:
        """Save the due streams of ``state`` (under the partition ``key``), then its mark;
        returns the mark (its offset is the one to commit)."""
        due = [s for s in sorted(state.changed) if everything or self._due(state, s, now)]
        offsets = {str(state.partition): state.next_offset}
        if due:
            registry.save_checkpoints(
                owner=OWNER,
                items=[
                    CheckpointItem(
                        key=stream_key(key, stream),
                        state=state.streams[stream],
                        offsets=offsets,
                        meta={
                            "stream": stream,
                            "examples": state.streams[stream].learner.examples_seen,
                        },
                    )
                    for stream in due
                ],
            )
            state.saved(due)
            for stream in due:
                self._changed_since.pop((state.partition, stream), None)
                examples = state.streams[stream].learner.examples_seen
                self._saved_examples[state.partition, stream] = examples
        mark = state.mark()
        registry.save_checkpoint(
            owner=OWNER,
            key=key,
            state=mark,
            offsets={str(state.partition): mark.next_offset},
            meta={"streams_saved": len(due), "streams_unsaved": len(state.changed)},
        )
        return mark

    def _due(self, state: PartitionState, stream: str, now: float) -> bool:
        if stream in state.must_save:
            return True
        key = (state.partition, stream)
        learned = state.streams[stream].learner.examples_seen - self._saved_examples.get(key, 0)
        if learned >= self.every:
            return True
        since = self._changed_since.setdefault(key, now)
        return now - since >= self.interval_s
