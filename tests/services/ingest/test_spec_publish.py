"""``spec publish``'s sending without a broker: what is reported when a send fails.

The broker path (read once, send all, record) is tested against the real broker in
tests/integration/test_bulk_cli.py; here a stand-in producer fails on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas import StreamConfig
from services.common.settings import DriftlineSettings
from services.ingest import spec_publish
from services.ingest.spec_publish import FAILED, PUBLISHED, UNCHANGED, _send, next_versions


def config(stream: str, **policy: Any) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": stream,
            "spec": {
                "features": [{"name": "x", "type": "number"}],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            **({"policy": policy} if policy else {}),
        }
    )


class Future:
    def __init__(self, offset: int, error: Exception | None = None) -> None:
        self.offset, self.error = offset, error

    def add_callback(self, fn: Any) -> None:
        if self.error is None:
            fn(self)

    def get(self, timeout: float) -> Any:
        if self.error is not None:
            raise self.error
        return self


class Producer:
    """Acknowledges every send but those named in ``refuse`` (raised by send) and
    ``fail`` (a failed future)."""

    def __init__(self, refuse: set[str], fail: set[str]) -> None:
        self.refuse, self.fail, self.closed = refuse, fail, False
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        if key.decode() in self.refuse:
            raise RuntimeError("no broker within max_block_ms")
        self.sent.append(key)
        error = RuntimeError("NotEnoughReplicas") if key.decode() in self.fail else None
        return Future(len(self.sent) - 1, error)

    def flush(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_versions_follow_the_topic() -> None:
    current = {"a": config("a").model_copy(update={"version": 4})}
    planned = next_versions([config("a"), config("b"), config("a", margin=0.5)], current)
    assert isinstance(planned[0], spec_publish.Outcome) and planned[0].status == UNCHANGED
    assert [getattr(p, "version", None) for p in planned[1:]] == [1, 5]


def test_a_refused_send_stops_the_rest_and_failed_acks_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = Producer(refuse={"d"}, fail={"b"})
    monkeypatch.setattr(spec_publish, "make_producer", lambda *_a, **_k: producer)
    sending = [(i, config(s).model_copy(update={"version": 1})) for i, s in enumerate("abcde")]
    acked: list[int] = []
    outcomes = _send(
        DriftlineSettings.load(env={}),
        "t",
        sending,
        [Path(f"{s}.yaml") for s in "abcde"],
        acked.append,
    )
    got = {outcomes[i].config.stream: (outcomes[i].status, outcomes[i].detail) for i in outcomes}
    assert got["a"] == (PUBLISHED, "to t at offset 0")
    assert got["b"][0] == FAILED and "NotEnoughReplicas" in got["b"][1]
    assert got["c"] == (PUBLISHED, "to t at offset 2")
    assert got["d"] == (FAILED, "(not sent: no broker within max_block_ms)")
    assert got["e"] == (FAILED, "(not sent after an error)")
    assert producer.sent == [b"a", b"b", b"c"] and producer.closed and sum(acked) == 2
    assert outcomes[4].path == Path("e.yaml")
