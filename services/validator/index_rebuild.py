"""The duplicate index read back from the valid topic.

The index is one per process, over every stream (each stream's valid examples are on its
canonical partition): it is rebuilt from the tail of every valid partition at start and
whenever a rebalance changes this process's raw partitions (another validator may have
accepted ids of the same streams meanwhile).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Final

from services.common.kafka_client import read_tails
from services.common.settings import DriftlineSettings
from services.validator.dedupe import DuplicateIndex, content_digest

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 120.0


def load_index(
    settings: DriftlineSettings, topic: str, partitions: Sequence[int], window: int
) -> tuple[DuplicateIndex, int]:
    """The duplicate index of every stream, rebuilt from the last ``window`` valid
    examples of each of ``partitions``.

    The index remembers ``window`` ids per partition read. Returns it and how many
    records were read.
    """
    index = DuplicateIndex(window * max(1, len(partitions)))
    read = 0
    for record in read_tails(
        settings,
        topic,
        partitions,
        window,
        client_id="driftline-validator",
        timeout_s=READ_TIMEOUT_S,
    ):
        read += 1
        _index_record(index, record.value)
    return index, read


def _index_record(index: DuplicateIndex, value: bytes | None) -> None:
    """Record one valid example (written by a validator) in the index."""
    try:
        doc = json.loads(value or b"")
        index.record(
            doc["stream"],
            doc["example_id"],
            uuid.UUID(doc["raw_event_id"]),
            int(doc["spec_version"]),
            digest=content_digest(doc["features"], doc["label"], doc["event_time"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("skipping an unreadable valid example while rebuilding the index: %s", exc)
