"""Source readers, synthetic streams, the producer's pacing and encoding."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import LabelledExample
from services.ingest.datasets import SYNTHETIC, dataset_rows
from services.ingest.producer import encode_raw, send_all
from services.ingest.sources import (
    Columns,
    Record,
    Skipped,
    dataset_records,
    parse_cell,
    parse_time,
    read_file,
    to_events,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None),
        ("  ", None),
        ("0", 0),
        ("-12", -12),
        ("+3", 3),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("True", True),
        ("false", False),
        ("inf", math.inf),
        ("-Infinity", -math.inf),
        ("007", "007"),
        ("12ab", "12ab"),
        ("paris", "paris"),
        ("1,5", "1,5"),
    ],
)
def test_parse_cell(text: str, value: Any) -> None:
    assert parse_cell(text) == value and type(parse_cell(text)) is type(value)


def test_parse_cell_nan() -> None:
    assert math.isnan(parse_cell("NaN"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T01:00:00+01:00", T0),
        ("2026-01-01 00:00:00", T0),
        (1767225600, T0),
        ("1767225600", T0),
        (1767225600000, T0),
    ],
)
def test_parse_time(value: Any, expected: datetime) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["yesterday", True, math.nan, None])
def test_parse_time_refuses(value: Any) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        parse_time(value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path, "d.csv", "id,x,c,y,ts\n7,1.5,red,yes,2026-01-01T00:00:00Z\n8,,blue,no,\n"
    )
    rows = list(read_file(path, Columns(id="id", time="ts", label="y")))
    assert rows == [
        Record(2, "7", {"x": 1.5, "c": "red"}, "yes", T0),
        Record(3, "8", {"x": None, "c": "blue"}, "no", None),
    ]


def test_csv_defaults_and_skipped_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "x,label\n1,a\n2\n3,\n4,b\n")
    rows = list(read_file(path))
    assert [type(r).__name__ for r in rows] == ["Record", "Skipped", "Skipped", "Record"]
    assert [r.example_id for r in rows if isinstance(r, Record)] == ["0", "3"]
    assert "1 fields where the header has 2" in rows[1].reason  # type: ignore[union-attr]
    assert "no label" in rows[2].reason  # type: ignore[union-attr]


def test_csv_default_id_and_time_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "example_id,event_time,x,label\nabc,1767225600,1,a\n")
    (row,) = read_file(path)
    assert isinstance(row, Record) and row.example_id == "abc" and row.event_time == T0
    assert row.features == {"x": 1}


@pytest.mark.parametrize(
    ("header", "columns", "error"),
    [
        ("x,y\n", Columns(), "no label column 'label'"),
        ("x,label\n", Columns(id="id"), "--id-column"),
        ("x,x,label\n", Columns(), "header repeats x"),
        ("", Columns(), "empty file"),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, columns: Columns, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        list(read_file(write(tmp_path, "d.csv", header), columns))


def test_jsonl_flat_and_example_shaped(tmp_path: Path) -> None:
    lines = [
        '{"example_id": "a", "x": NaN, "label": 1}',
        "",
        '{"features": {"x": 2}, "label": 0, "example_id": 5, "event_time": "2026-01-01T00:00:00Z"}',
        "[1, 2]",
        "{oops",
    ]
    rows = list(read_file(write(tmp_path, "d.jsonl", "\n".join(lines))))
    first, second, third, fourth = rows
    assert isinstance(first, Record) and math.isnan(first.features["x"]) and first.example_id == "a"
    assert second == Record(3, "5", {"x": 2}, 0, T0)
    assert isinstance(third, Skipped) and "JSON object" in third.reason
    assert isinstance(fourth, Skipped) and "not JSON" in fourth.reason


def test_unknown_file_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown file type"):
        read_file(write(tmp_path, "d.txt", ""))


def test_to_events_limits_and_skips() -> None:
    records = [
        Record(1, "1", {"x": 1}, "a", T0),
        Skipped(2, "bad row"),
        Record(3, "2", {"x": [1]}, "a", None),
        Record(4, "3", {"x": 3}, "b", None),
        Record(5, "4", {"x": 4}, "b", None),
    ]
    out = list(to_events("s", records, limit=2, clock=lambda: T0))
    kinds = [type(o).__name__ for o in out]
    assert kinds == ["LabelledExample", "Skipped", "Skipped", "LabelledExample"]
    assert "features.x" in out[2].reason  # type: ignore[union-attr]
    assert out[3].event_time == T0  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_streams_are_seeded(name: str) -> None:
    def take(seed: int) -> list[Any]:
        rows, size = dataset_rows(name, seed=seed)
        assert size is None
        return list(itertools.islice(rows, 50))

    assert take(1) == take(1)
    assert take(1) != take(2)
    features, label = take(3)[0]
    assert all(isinstance(k, str) for k in features)
    events = list(to_events("s", dataset_records(take(3)), clock=lambda: T0))
    assert all(isinstance(e, LabelledExample) for e in events)


def test_sea_drifts_at_documented_positions() -> None:
    rows, _ = dataset_rows("synth:sea-drift", seed=42)
    sample = list(itertools.islice(rows, 15_002))
    assert set(sample[0][0]) == {"x1", "x2", "x3"}
    # SEA concepts differ by their threshold on x1 + x2 (8, 9, 7, 9.5): the label rate shifts
    rate = [sum(y for _, y in sample[i * 5000 : (i + 1) * 5000]) / 5000 for i in range(3)]
    assert rate[0] != rate[1] != rate[2]


def test_unknown_datasets() -> None:
    with pytest.raises(ValueError, match="unknown synthetic"):
        dataset_rows("synth:nope")
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_rows("river:Nope")
    rows, size = dataset_rows("river:Bananas")
    assert size == 5300


def test_encode_raw_keeps_non_finite_literals() -> None:
    ex = LabelledExample(
        stream="s",
        example_id="1",
        features={"x": math.inf, "y": 1.0},
        label=math.nan,
        event_time=T0,
    )
    doc = json.loads(encode_raw(ex))
    assert doc["features"]["x"] == math.inf and math.isnan(doc["label"])
    plain = LabelledExample(stream="s", example_id="1", features={"y": 1.0}, label=1, event_time=T0)
    assert json.loads(encode_raw(plain))["features"] == {"y": 1.0}


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_callback(self, fn: Any) -> None:
        fn(None)

    def add_errback(self, fn: Any) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushes = 0

    def send(self, topic: str, key: bytes | None, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture()

    def flush(self) -> None:
        self.flushes += 1


def examples(n: int) -> list[LabelledExample]:
    return [
        LabelledExample(stream="s", example_id=str(i), features={"x": 1.0}, label=1, event_time=T0)
        for i in range(n)
    ]


def test_send_all_paces_to_the_rate() -> None:
    producer = FakeProducer()
    report = send_all(producer, "t", examples(21), rate=100.0)
    assert report.sent == 21 and report.elapsed_s >= 0.19
    assert all(key == b"s" for _, key, _ in producer.sent)


def test_send_all_flushes_and_reports_on_ctrl_c() -> None:
    producer = FakeProducer()

    def interrupted() -> Any:
        yield from examples(5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        send_all(producer, "t", interrupted())
    assert info.value.report.sent == 5  # type: ignore[attr-defined]
    assert producer.flushes == 1


def test_ctrl_c_during_a_send_still_counts_that_event() -> None:
    """SIGINT arriving inside ``send`` (the record queued, its callback not attached yet)
    only stops the loop: every event handed to the producer is counted."""
    producer = FakeProducer()
    send = producer.send

    def send_then_ctrl_c(topic: str, key: bytes | None, value: bytes) -> FakeFuture:
        future = send(topic, key, value)
        if len(producer.sent) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return future

    producer.send = send_then_ctrl_c  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info:
        send_all(producer, "t", examples(10))
    assert info.value.report.sent == len(producer.sent) == 3  # type: ignore[attr-defined]
    assert producer.flushes == 1
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_rows_name_their_stream(tmp_path: Path) -> None:
    lines = [
        '{"stream": "a", "example_id": "1", "x": 1, "label": 0}',
        '{"stream": "b", "example_id": "2", "features": {"x": 2}, "label": 1}',
        '{"example_id": "3", "x": 3, "label": 0}',
        '{"stream": 7, "example_id": "4", "x": 4, "label": 0}',
        '{"stream": "b", "example_id": "5", "x": 5}',
    ]
    rows = list(read_file(write(tmp_path, "d.jsonl", "\n".join(lines))))
    assert rows[:3] == [
        Record(1, "1", {"x": 1}, 0, None, "a"),
        Record(2, "2", {"x": 2}, 1, None, "b"),
        Record(3, "3", {"x": 3}, 0, None, None),
    ]
    assert rows[3] == Skipped(4, "stream must be a string, got int")
    assert isinstance(rows[4], Skipped) and rows[4].stream == "b" and "no label" in rows[4].reason

    events = list(to_events("default", rows, clock=lambda: T0))
    assert [(e.stream, type(e).__name__) for e in events] == [
        ("a", "LabelledExample"),
        ("b", "LabelledExample"),
        ("default", "LabelledExample"),
        ("default", "Skipped"),
        ("b", "Skipped"),
    ]


def test_csv_stream_column(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "stream,x,label\na,1,0\n,2,1\n")
    rows = list(read_file(path))
    assert rows == [Record(2, "0", {"x": 1}, 0, None, "a"), Record(3, "1", {"x": 2}, 1, None)]
    named = write(tmp_path, "e.csv", "team,stream,label\nt1,s,0\n")
    (row,) = read_file(named, Columns(stream="team"))
    assert row == Record(2, "0", {"stream": "s"}, 0, None, "t1")  # stream is a feature here


def test_to_events_refuses_a_bad_stream_name() -> None:
    (out,) = to_events("s", [Record(1, "1", {"x": 1}, 0, None, "no spaces")], clock=lambda: T0)
    assert isinstance(out, Skipped) and out.reason.startswith("stream:")


def test_send_all_counts_by_stream() -> None:
    events = [
        LabelledExample(stream=s, example_id=str(i), features={"x": 1.0}, label=1, event_time=T0)
        for i, s in enumerate("abab" + "c")
    ]
    producer = FakeProducer()
    report = send_all(producer, "t", events)
    assert report.sent == 5 and report.sent_by_stream == {"a": 2, "b": 2, "c": 1}
    assert [key for _, key, _ in producer.sent] == [b"a", b"b", b"a", b"b", b"c"]
