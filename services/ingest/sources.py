"""Files turned into labelled-example events: CSV and JSON Lines, read as records and
validated against the event contract. Pure: no Kafka here. Data sets (River's offline
ones and the synthetic streams) are :mod:`services.ingest.datasets`'.

>>> [parse_cell(c) for c in ["", "7", "-2.5e3", "TRUE", "nan", "007", "red"]]
[None, 7, -2500.0, True, nan, '007', 'red']
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas import LabelledExample
from services.ingest.datasets import Row, json_value

# Column names used when present and no other is given.
DEFAULT_ID_COLUMN = "example_id"
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_TIME_COLUMN = "event_time"
DEFAULT_STREAM_COLUMN = "stream"

_INT = re.compile(r"^[+-]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_SPECIAL = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}


# -- files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One example read from a source, before it becomes an event."""

    line: int  # 1-based line of the file (row number for datasets)
    example_id: str
    features: dict[str, Any]
    label: Any
    event_time: datetime | None
    stream: str | None = None  # the stream the row names, if it names one


@dataclass(frozen=True)
class Skipped:
    """A row that cannot become a labelled example, and why."""

    line: int
    reason: str
    stream: str | None = None  # the stream the row names, if it names one


def parse_cell(text: str) -> Any:
    """A CSV cell as a JSON value: empty -> None, true/false, int, float (nan, inf), str.

    Numbers with leading zeros (``007``) stay strings, as codes usually are.
    """
    stripped = text.strip()
    if not stripped:
        return None
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped):
        return float(stripped)
    if lowered in _SPECIAL:
        return _SPECIAL[lowered]
    return text


def parse_time(value: Any) -> datetime:
    """An event time from ISO 8601 text or epoch seconds (milliseconds when > 1e11)."""
    if isinstance(value, str):
        number = parse_cell(value)
        if isinstance(number, int | float) and not isinstance(number, bool):
            value = number
        else:
            try:
                parsed = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    f"cannot read {value!r} as a time (ISO 8601 or epoch seconds)"
                ) from None
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    raise ValueError(f"cannot read {value!r} as a time (ISO 8601 or epoch seconds)")


@dataclass(frozen=True)
class Columns:
    """Which columns hold the id, the label, the event time and the stream (None:
    defaults; the stream column is ``stream`` when present)."""

    id: str | None = None
    label: str | None = None
    time: str | None = None
    stream: str | None = None

    def stream_column(self, names: Iterable[str]) -> str | None:
        """The column naming each row's stream, if the file has one."""
        present = set(names)
        if self.stream is not None:
            return self.stream if self.stream in present else None
        return DEFAULT_STREAM_COLUMN if DEFAULT_STREAM_COLUMN in present else None

    def resolve(self, names: Iterable[str]) -> tuple[str | None, str, str | None]:
        """The columns to use given a file's column names; raises ValueError if missing."""
        present = set(names)
        label = self.label or DEFAULT_LABEL_COLUMN
        if label not in present:
            raise ValueError(
                f"no label column {label!r} (columns: {', '.join(sorted(present))}); "
                "name it with --label-column"
            )
        for given, what in ((self.id, "--id-column"), (self.time, "--timestamp-column")):
            if given is not None and given not in present:
                raise ValueError(f"{what} {given!r} is not a column ({', '.join(sorted(present))})")
        ident = self.id or (DEFAULT_ID_COLUMN if DEFAULT_ID_COLUMN in present else None)
        time = self.time or (DEFAULT_TIME_COLUMN if DEFAULT_TIME_COLUMN in present else None)
        return ident, label, time


def read_file(path: Path, columns: Columns = Columns()) -> Iterator[Record | Skipped]:
    """Records of a ``.csv`` file or a JSON Lines file (``.jsonl``, ``.ndjson``, ``.json``)."""
    if path.suffix.lower() == ".csv":
        return read_csv(path, columns)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(path, columns)
    raise ValueError(f"{path}: unknown file type (use .csv or .jsonl)")


def unnamed_columns(header: Iterable[str]) -> list[str]:
    """What to tell a person about header cells that name no column (1-based positions).

    Such a column is not read (it cannot be a feature, an id or a label): often the row
    index a dataframe wrote.

    >>> [note[:31] for note in unnamed_columns(["", "age", " "])]
    ['column 1 has no name in the hea', 'column 3 has no name in the hea']
    """
    return [
        f"column {position} has no name in the header: it is not read (not a feature); "
        "name it in the header to use it, as a feature or as the id (--id-column NAME)"
        for position, name in enumerate(header, start=1)
        if not name.strip()
    ]


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV file (empty for an empty file)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def read_csv(path: Path, columns: Columns = Columns()) -> Iterator[Record | Skipped]:
    """Records of a CSV file with a header row; cells are typed by :func:`parse_cell`.

    The id is the id column's text (default: the ``example_id`` column, else the row
    number from 0); every column but the id, label and time is a feature. Columns with
    no name in the header are not read (see :func:`unnamed_columns`).
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file, expected a header row")
        named = [h for h in header if h.strip()]
        if len(set(named)) != len(named):
            repeated = sorted({h for h in named if named.count(h) > 1})
            raise ValueError(f"{path}: header repeats {', '.join(repeated)}")
        ident, label, time = columns.resolve(named)
        stream = columns.stream_column(named)
        special = {ident, label, time, stream}
        for number, cells in enumerate(reader):
            line = reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                yield Skipped(line, f"{len(cells)} fields where the header has {len(header)}")
                continue
            row = {h: c for h, c in zip(header, cells, strict=True) if h.strip()}
            yield _record(
                line,
                number,
                row[ident].strip() if ident else None,
                {k: parse_cell(v) for k, v in row.items() if k not in special},
                parse_cell(row[label]),
                row[time] if time else None,
                row[stream].strip() or None if stream else None,
            )


def read_jsonl(path: Path, columns: Columns = Columns()) -> Iterator[Record | Skipped]:
    """Records of a JSON Lines file: one object per line, flat (columns) or example-shaped.

    An example-shaped line has a ``features`` object; a flat one holds the features
    beside the id, label, time and stream. A line may name its stream (a ``stream``
    field, or the column given as ``columns.stream``); the others take the default
    stream. ``NaN`` and ``Infinity`` literals are read as floats.
    """
    number = 0
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                yield Skipped(line, f"not JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                yield Skipped(line, f"expected a JSON object, got {type(obj).__name__}")
                continue
            column = columns.stream_column(obj)
            stream = obj.get(column) if column else None
            if stream is not None and not isinstance(stream, str):
                yield Skipped(line, f"{column} must be a string, got {type(stream).__name__}")
                continue
            try:
                ident, label, time = columns.resolve(obj)
            except ValueError as exc:
                yield Skipped(line, str(exc), stream)
                continue
            if isinstance(obj.get("features"), dict):
                features = obj["features"]
            else:
                special = {ident, label, time, column}
                features = {k: v for k, v in obj.items() if k not in special}
            raw_id = obj.get(ident) if ident else None
            yield _record(
                line,
                number,
                str(raw_id) if raw_id is not None else None,
                features,
                obj[label],
                obj.get(time) if time else None,
                stream,
            )
            number += 1


def _record(
    line: int,
    number: int,
    example_id: str | None,
    features: dict[str, Any],
    label: Any,
    time: Any,
    stream: str | None = None,
) -> Record | Skipped:
    if example_id is not None and not example_id:
        return Skipped(line, "empty example id", stream)
    if label is None:
        return Skipped(line, "no label (an unlabelled row is not a labelled example)", stream)
    event_time = None
    if time is not None and time != "":
        try:
            event_time = parse_time(time)
        except ValueError as exc:
            return Skipped(line, str(exc), stream)
    example_id = example_id if example_id is not None else str(number)
    return Record(line, example_id, features, label, event_time, stream)


def dataset_records(rows: Iterable[Row]) -> Iterator[Record]:
    """Records of dataset rows: ids are the row numbers, no event time."""
    for i, (features, label) in enumerate(rows):
        yield Record(
            i + 1,
            str(i),
            {str(k): json_value(v) for k, v in features.items()},
            json_value(label),
            None,
        )


def to_events(
    stream: str,
    records: Iterable[Record | Skipped],
    *,
    limit: int | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[LabelledExample | Skipped]:
    """Labelled examples of ``records`` (event time: the record's, else ``clock()``), in
    the stream each record names, else in ``stream``.

    Rows that break the event contract come out as :class:`Skipped` with the reason and
    their stream; ``limit`` counts examples, not skipped rows.
    """
    made = 0
    for record in records:
        if limit is not None and made >= limit:
            return
        if isinstance(record, Skipped):
            yield record if record.stream else Skipped(record.line, record.reason, stream)
            continue
        try:
            event = LabelledExample(
                stream=record.stream or stream,
                example_id=record.example_id,
                features=record.features,
                label=record.label,
                event_time=record.event_time or clock(),
            )
        except ValidationError as exc:
            yield Skipped(record.line, _summary(exc), record.stream or stream)
            continue
        made += 1
        yield event


def _summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:2]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function"))
        parts.append(f"{loc or 'row'}: {err.get('msg')}")
    return "; ".join(parts)
