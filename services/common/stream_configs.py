"""The latest stream config of every stream, followed live from the compacted ``streams``
topic. Synchronous: the owner calls :meth:`StreamConfigs.refresh` from its own loop.

Any principal that can write to ``streams`` can write anything there, so a record is
applied only when it is a config of the stream named by its key with a newer version
than the one in force. Anything else (not JSON, a broken contract, no version, a stream
in the value other than the key, an older or equal version) leaves the config in force
as it was, is counted by reason in :attr:`StreamConfigs.unusable` (and in the owner's
``counter``, when it passes one) and logged with its position, at most a few lines a
second. A tombstone (a key with no value) deletes its stream, as ``driftline spec``
means it to.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from schemas import CATALOGUE, StreamConfig, Topics
from services.common.compacted import Refusal, read_value
from services.common.errors import BrokerError
from services.common.kafka_client import assign_all, caught_up, control_fetch, make_consumer
from services.common.logs import Throttle, at
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)

# A change on the topic: a new config version, or the name of a deleted stream.
Change = StreamConfig | str

# Why a record of the streams topic was not applied (the ``reason`` label of the counter):
# a :class:`~services.common.compacted.Refusal`'s kind (unparseable, contract_violation,
# unsupported_schema_version, key_mismatch, no_version, ...), and this one.
STALE_VERSION = "stale_version"  # not newer than the version in force


class StreamConfigs:
    """Stream name -> its newest published config (tombstones remove a stream)."""

    def __init__(
        self,
        settings: DriftlineSettings,
        *,
        client_id: str = "driftline",
        counter: Any | None = None,
    ) -> None:
        """``counter``: a Prometheus counter with a ``reason`` label, counting the records
        that were not applied (optional; :attr:`unusable` counts them either way)."""
        self.topic = Topics(settings.topic_prefix).name("streams")
        self.unusable: Counter[str] = Counter()
        self._counter = counter
        self._configs: dict[str, StreamConfig] = {}
        self._throttle = Throttle(log, per_s=5)
        self._consumer = make_consumer(
            settings, group_id=None, client_id=client_id, **control_fetch(settings)
        )
        try:
            self._tps = assign_all(self._consumer, self.topic)
        except BaseException:
            self._consumer.close()
            raise

    def catch_up(self, timeout_s: float = 120.0) -> list[Change]:
        """Read the topic up to its current end; returns the changes, in order."""
        deadline = time.monotonic() + timeout_s
        changes: list[Change] = []
        while not caught_up(self._consumer, self._tps):
            if time.monotonic() > deadline:
                raise BrokerError(f"timed out reading {self.topic} to its end")
            changes += self._apply(self._consumer.poll(timeout_ms=500))
        return changes

    def refresh(self, timeout_ms: int = 0) -> list[Change]:
        """Apply what arrived since the last call (waiting at most ``timeout_ms``).

        Returns the changes in order: each new config version, and the name of each
        stream deleted by a tombstone.
        """
        return self._apply(self._consumer.poll(timeout_ms=timeout_ms))

    def get(self, stream: str) -> StreamConfig | None:
        """The stream's current config, if it has one."""
        return self._configs.get(stream)

    def current(
        self, stream: str, *, at_least: int | None = None, timeout_s: float = 30.0
    ) -> StreamConfig | None:
        """The stream's config, reading the topic to its end first when this follower has
        none yet, or only one older than version ``at_least``.

        A valid example was judged against a config that was already on the topic, so a
        follower that has not read it yet must catch up before it calls the stream
        unknown: otherwise a consumer started after the validator dead-letters valid
        examples. ``None`` only when the topic, read to its end, has no config for the
        stream (never published, or deleted); a topic that cannot be read to its end
        within ``timeout_s`` counts as read (the caller dead-letters, nothing is lost).
        """
        config = self._configs.get(stream)
        if config is not None and (at_least is None or (config.version or 0) >= at_least):
            return config
        try:
            self.catch_up(timeout_s=timeout_s)
        except BrokerError as exc:
            self._throttle.warning("%s: %s", self.topic, exc)
        return self._configs.get(stream)

    def all(self) -> dict[str, StreamConfig]:
        """Every stream's current config."""
        return dict(self._configs)

    def close(self) -> None:
        """Close the client."""
        self._consumer.close()

    def _apply(self, batches: dict[Any, list[Any]]) -> list[Change]:
        changed: list[Change] = []
        for records in batches.values():
            for record in records:
                change = self._one(record)
                if change is not None:
                    changed.append(change)
        return changed

    def _one(self, record: Any) -> Change | None:
        """The change ``record`` makes, or None (counted and logged when unusable)."""
        key = None if record.key is None else bytes(record.key).decode(errors="replace")
        if record.value is None:  # a tombstone: the stream was deleted
            if key is None:
                self._unusable(record, "unparseable", "a record with neither key nor value")
                return None
            self._configs.pop(key, None)
            return key
        found = read_value(CATALOGUE["streams"], record.key, record.value)
        if isinstance(found, Refusal):
            self._unusable(record, found.kind, found.detail)
            return None
        config = found
        assert isinstance(config, StreamConfig) and config.version  # noqa: S101 - read_value's
        current = self._configs.get(config.stream)
        if current is not None and (current.version or 0) >= config.version:
            if current.version != config.version or current != config:
                self._unusable(
                    record,
                    STALE_VERSION,
                    f"{config.stream!r} v{config.version} is not newer than "
                    f"v{current.version} in force",
                )
            return None
        self._configs[config.stream] = config
        return config

    def _unusable(self, record: Any, reason: str, detail: str) -> None:
        self.unusable[reason] += 1
        if self._counter is not None:
            self._counter.labels(reason=reason).inc()
        self._throttle.warning(
            "ignoring an unusable record on the streams topic (the config in force stays): %s",
            detail,
            extra=at(record.topic, record.partition, record.offset, reason=reason),
        )
