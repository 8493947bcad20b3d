"""The newest drift events of a stream, read from the tail of the ``drift`` topic.

A scheduled run asks, before it moves an alias, whether a drift that retrains was
detected after its window (:class:`DriftTail`): the trainer reads the drift topic one event
at a time, so a drift detected while a scheduled run fits is still waiting behind it, and
the scheduled model, trained on rows from before the drift, must not overtake it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from schemas import CATALOGUE, StreamConfig
from schemas.drift import DriftDetected
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_client import offset_bounds, read_between
from services.common.settings import DriftlineSettings
from services.trainer.triggers import retrains

log = logging.getLogger(__name__)


class DriftTail:
    """``(stream, after) -> bool``: a retraining drift of ``stream`` later than ``after``
    among the last ``depth`` records of every partition of the drift topic."""

    def __init__(
        self,
        settings: DriftlineSettings,
        topic: str,
        configs: Callable[[str], StreamConfig | None],
        *,
        depth: int = 500,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.configs = configs
        self.depth = depth

    def __call__(self, stream: str, after: datetime) -> bool:
        begin, end = offset_bounds(self.settings, self.topic)
        start = {p: max(begin.get(p, 0), e - self.depth) for p, e in end.items()}
        key = stream.encode()
        config = self.configs(stream)
        for record in read_between(self.settings, self.topic, start, end, timeout_s=30.0):
            if record.key is not None and record.key != key:
                continue
            try:
                event = decode(record.value, CATALOGUE["drift"])
            except CodecError:
                continue  # the agent dead-letters it when it gets there
            if (
                isinstance(event, DriftDetected)
                and event.stream == stream
                and event.event_time > after
                and retrains(event, config)
            ):
                log.info(
                    "%s: drift %s at %s is newer than a scheduled window ending %s",
                    stream,
                    event.event_id,
                    event.event_time.isoformat(),
                    after.isoformat(),
                )
                return True
        return False
