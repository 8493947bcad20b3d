"""The latest stream config of every stream, followed live from the compacted ``streams``
topic. Synchronous: the owner calls :meth:`StreamConfigs.refresh` from its own loop."""

from __future__ import annotations

import logging
import time
from typing import Any

from schemas import StreamConfig, Topics
from services.common.codec import decode
from services.common.errors import BrokerError, CodecError
from services.common.kafka_client import assign_all, caught_up, make_consumer
from services.common.logs import at
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)

# A change on the topic: a new config version, or the name of a deleted stream.
Change = StreamConfig | str


class StreamConfigs:
    """Stream name -> its newest published config (tombstones remove a stream)."""

    def __init__(self, settings: DriftlineSettings, *, client_id: str = "driftline") -> None:
        self.topic = Topics(settings.topic_prefix).name("streams")
        self._configs: dict[str, StreamConfig] = {}
        self._consumer = make_consumer(settings, group_id=None, client_id=client_id)
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
                if record.value is None:  # a tombstone: the stream was deleted
                    if record.key is not None:
                        name = record.key.decode(errors="replace")
                        self._configs.pop(name, None)
                        changed.append(name)
                    continue
                try:
                    config = decode(record.value, StreamConfig)
                except CodecError as exc:
                    log.warning(
                        "ignoring a bad stream config: %s",
                        exc,
                        extra=at(record.topic, record.partition, record.offset),
                    )
                    continue
                if not isinstance(config, StreamConfig) or config.version is None:
                    continue
                current = self._configs.get(config.stream)
                if current is None or (current.version or 0) < config.version:
                    self._configs[config.stream] = config
                    changed.append(config)
        return changed
