"""StreamConfigs: an unusable record on the streams topic never erases or replaces the
config in force; it is counted and logged. A tombstone still deletes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from schemas import StreamConfig
from services.common import stream_configs
from services.common.codec import encode
from services.common.metrics import Metrics
from services.common.settings import DriftlineSettings
from services.common.stream_configs import StreamConfigs

TOPIC = "p.streams"


def config(stream: str = "s", version: int = 1, classes: tuple[int, ...] = (0, 1)) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": stream,
            "version": version,
            "spec": {
                "features": [{"name": "x", "type": "number"}],
                "label": {"kind": "class", "classes": list(classes)},
            },
        }
    )


class FakeConsumer:
    """Hands out the records queued in ``batches``, one poll at a time."""

    def __init__(self) -> None:
        self.batches: list[dict[Any, list[Any]]] = []

    def poll(self, timeout_ms: int = 0) -> dict[Any, list[Any]]:
        return self.batches.pop(0) if self.batches else {}

    def close(self) -> None:
        pass


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StreamConfigs, FakeConsumer]]:
    consumer = FakeConsumer()
    monkeypatch.setattr(stream_configs, "make_consumer", lambda *a, **k: consumer)
    monkeypatch.setattr(stream_configs, "assign_all", lambda c, topic: [])
    counter = Metrics("test").counter("configs_rejected_total", "Rejected.", ["reason"])
    found = StreamConfigs(DriftlineSettings.load(env={}, topic_prefix="p."), counter=counter)
    yield found, consumer
    found.close()


class Feed:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.offset = 0

    def __call__(self, key: bytes | None, value: bytes | None) -> None:
        self.consumer.batches.append(
            {
                0: [
                    SimpleNamespace(
                        topic=TOPIC, partition=0, offset=self.offset, key=key, value=value
                    )
                ]
            }
        )
        self.offset += 1


def test_an_unusable_record_under_a_streams_key_leaves_its_config_in_force(
    configs: tuple[StreamConfigs, FakeConsumer], caplog: pytest.LogCaptureFixture
) -> None:
    found, consumer = configs
    found._throttle.per_s = 100  # every line, to check each names its position
    feed = Feed(consumer)
    good = config("s", 1)
    feed(b"s", encode(good))
    assert found.refresh() == [good]

    bad_contract = json.loads(encode(config("s", 5)))
    bad_contract["spec"]["label"] = "every class"
    unusable = [
        (b"s", b"{not json", "unparseable"),
        (b"s", json.dumps(bad_contract).encode(), "contract_violation"),
        (b"s", encode(config("s", None)), "no_version"),  # type: ignore[arg-type]
        (b"s", encode(config("t", 9)), "key_mismatch"),  # another stream's config under s
        (b"t", encode(config("s", 9, classes=(5, 6))), "key_mismatch"),  # s under t's key
        (None, encode(config("s", 9)), "key_mismatch"),
        (b"s", encode(config("s", 1, classes=(5, 6))), "stale_version"),
        (None, None, "unparseable"),  # neither key nor value
    ]
    with caplog.at_level(logging.WARNING, logger=stream_configs.__name__):
        for key, value, _ in unusable:
            feed(key, value)
            assert found.refresh() == []
            assert found.get("s") == good  # neither erased nor replaced

    assert found.all() == {"s": good}
    want: dict[str, int] = {}
    for _, _, reason in unusable:
        want[reason] = want.get(reason, 0) + 1
    assert dict(found.unusable) == want
    counter = found._counter
    assert counter is not None
    assert counter.labels(reason="key_mismatch")._value.get() == 3
    positions = [(r.topic, r.partition, r.offset) for r in caplog.records]
    assert positions == [(TOPIC, 0, o) for o in range(1, len(unusable) + 1)]

    # the same version again (a producer's retry) is no news and no error
    feed(b"s", encode(good))
    assert found.refresh() == [] and sum(found.unusable.values()) == len(unusable)
    # a newer version under the right key replaces it; a tombstone deletes the stream
    newer = config("s", 2, classes=(0, 1, 2))
    feed(b"s", encode(newer))
    assert found.refresh() == [newer] and found.get("s") == newer
    feed(b"s", None)
    assert found.refresh() == ["s"] and found.get("s") is None


def test_a_flood_of_unusable_records_logs_a_few_lines(
    configs: tuple[StreamConfigs, FakeConsumer], caplog: pytest.LogCaptureFixture
) -> None:
    found, consumer = configs
    consumer.batches.append(
        {
            0: [
                SimpleNamespace(topic=TOPIC, partition=0, offset=o, key=b"s", value=b"junk")
                for o in range(500)
            ]
        }
    )
    with caplog.at_level(logging.WARNING, logger=stream_configs.__name__):
        assert found.refresh() == []
    assert found.unusable["unparseable"] == 500
    assert 1 <= len(caplog.records) <= 10


@pytest.fixture
def at_end_when_drained(
    monkeypatch: pytest.MonkeyPatch, configs: tuple[StreamConfigs, FakeConsumer]
) -> None:
    """``caught_up`` as the broker answers it: at the end once nothing is left to poll."""
    _, consumer = configs
    monkeypatch.setattr(stream_configs, "caught_up", lambda c, tps: not consumer.batches)


@pytest.mark.usefixtures("at_end_when_drained")
def test_current_reads_to_the_end_before_calling_a_stream_unknown(
    configs: tuple[StreamConfigs, FakeConsumer],
) -> None:
    # The validator judged an example against this config; this follower has not polled it
    # yet (a learner started after the validator): unknown by get(), found by current().
    found, consumer = configs
    feed = Feed(consumer)
    feed(b"s", encode(config("s", 1)))
    assert found.get("s") is None
    current = found.current("s")
    assert current is not None and current.version == 1


@pytest.mark.usefixtures("at_end_when_drained")
def test_current_catches_up_to_the_version_an_example_was_judged_by(
    configs: tuple[StreamConfigs, FakeConsumer],
) -> None:
    found, consumer = configs
    feed = Feed(consumer)
    feed(b"s", encode(config("s", 1)))
    found.refresh()
    feed(b"s", encode(config("s", 2, classes=(0, 1, 2))))
    assert found.current("s").version == 1  # type: ignore[union-attr]  # nothing newer asked
    newer = found.current("s", at_least=2)
    assert newer is not None and newer.version == 2


@pytest.mark.usefixtures("at_end_when_drained")
def test_current_is_none_for_a_stream_the_whole_topic_does_not_have(
    configs: tuple[StreamConfigs, FakeConsumer],
) -> None:
    found, consumer = configs
    Feed(consumer)(b"s", encode(config("s", 1)))
    assert found.current("other") is None
    assert found.get("s") is not None  # read on the way
