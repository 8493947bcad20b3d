from __future__ import annotations

import json
import logging
import urllib.request

import pytest

from services.common.logs import JsonFormatter, TextFormatter, at
from services.common.metrics import Metrics
from services.common.shutdown import GracefulShutdown


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"msg": msg, "levelname": "ERROR", "name": "t", "levelno": 40})
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_log_names_topic_partition_offset() -> None:
    line = JsonFormatter("validator").format(record("bad", **at("raw", 3, 17, reason="oversize")))
    doc = json.loads(line)
    assert doc["service"] == "validator" and doc["msg"] == "bad"
    assert (doc["topic"], doc["partition"], doc["offset"], doc["reason"]) == (
        "raw",
        3,
        17,
        "oversize",
    )


def test_text_log_appends_extras() -> None:
    line = TextFormatter("learner").format(record("x", **at("valid", 0, 5)))
    assert line.endswith("x topic=valid partition=0 offset=5")


def test_metrics_served_over_http() -> None:
    m = Metrics("test")
    m.counter("things_total", "Things.", ["kind"]).labels(kind="a").inc(3)
    port = m.serve(0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()  # noqa: S310
    finally:
        m.close()
    assert b'driftline_things_total{kind="a"} 3.0' in body


def test_shutdown_flag_and_restore() -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with GracefulShutdown() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(SystemExit):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
