"""Data sources turned into labelled-example events. Pure: no Kafka here.

Sources are CSV and JSON Lines files, River datasets that ship offline
(``river:Phishing``, ``river:Bananas``, ...) and synthetic drifting streams built from
``river.datasets.synth`` with a fixed seed (:data:`SYNTHETIC`).

>>> rows = river_rows("river:Phishing")
>>> x, y = next(iter(rows))
>>> sorted(x)[:2], y
(['age_of_domain', 'anchor_from_other_domain'], True)
>>> events = list(as_examples("phishing", river_rows("river:Phishing"), limit=3))
>>> [e.example_id for e in events]
['0', '1', '2']
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas import LabelledExample

Row = tuple[dict[str, Any], Any]

# River's tasks with one label per row (multi-output datasets are not streams of examples).
_SINGLE_LABEL_TASKS = ("Binary classification", "Multi-class classification", "Regression")

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


def offline_datasets() -> tuple[str, ...]:
    """River's single-label datasets whose file ships with the installed River, by name.

    Found, not listed: every file dataset of ``river.datasets`` that needs no download
    and has one label per row (binary, multi-class or regression).

    >>> {"Bananas", "Phishing", "ImageSegments", "TrumpApproval", "ChickWeights"} <= set(
    ...     offline_datasets())
    True
    """
    from river import datasets
    from river.datasets import base

    found = []
    for name in sorted(getattr(datasets, "__all__", dir(datasets))):
        cls: Any = getattr(datasets, name, None)
        if not (
            isinstance(cls, type)
            and issubclass(cls, base.FileDataset)
            and not issubclass(cls, base.RemoteDataset)
        ):
            continue
        factory: Any = cls
        try:
            dataset = factory()
        except TypeError:  # needs arguments: not a plain file dataset
            continue
        if dataset.task in _SINGLE_LABEL_TASKS and Path(dataset.path).exists():
            found.append(name)
    return tuple(found)


def river_rows(name: str) -> Iterable[Row]:
    """Rows of a River dataset named ``river:<Name>`` that ships offline with River."""
    from river import datasets

    _, _, dataset = name.partition(":")
    known = offline_datasets()
    if dataset not in known:
        raise ValueError(f"unknown dataset {name!r}; offline ones: river:{', river:'.join(known)}")
    rows: Iterable[Row] = getattr(datasets, dataset)()
    return rows


def _json_value(value: Any) -> Any:
    """Plain JSON-able values: numpy scalars and datetimes become Python ones."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, datetime):
        return value.timestamp()
    return value


def as_examples(
    stream: str,
    rows: Iterable[Row],
    *,
    limit: int | None = None,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    id_prefix: str = "",
) -> Iterator[LabelledExample]:
    """Labelled-example events from ``(features, label)`` rows.

    Example ids are the row numbers (with an optional prefix); event times start at
    ``start`` (default: so that the last example is "now") and advance by ``step``.
    """
    if start is None:
        count = limit if limit is not None else 0
        start = datetime.now(UTC) - step * count
    for i, (features, label) in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield LabelledExample(
            stream=stream,
            example_id=f"{id_prefix}{i}",
            features={str(k): _json_value(v) for k, v in features.items()},
            label=_json_value(label),
            event_time=start + step * i,
        )


# -- synthetic drifting streams ---------------------------------------------------


@dataclass(frozen=True)
class Synthetic:
    """A synthetic stream with documented drift."""

    name: str
    description: str
    drifts: str
    default_limit: int
    rows: Callable[[int], Iterator[Row]]


def _numbered(features: dict[Any, Any]) -> dict[str, Any]:
    """River's integer feature keys 0, 1, ... as x1, x2, ..."""
    return {f"x{int(k) + 1}" if isinstance(k, int) else str(k): v for k, v in features.items()}


def _sea_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    for concept in range(4):  # SEA's four concepts, 5,000 examples each, then concept 3 on
        rows = synth.SEA(variant=concept, noise=0.1, seed=seed + concept)
        taken = rows.take(5000) if concept < 3 else iter(rows)
        for x, y in taken:
            yield _numbered(x), bool(y)


_AGRAWAL_CATEGORIES = ("elevel", "car", "zipcode")


def _agrawal_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    stream = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=0, seed=seed),
        drift_stream=synth.Agrawal(classification_function=2, seed=seed + 1),
        position=5000,
        width=1000,
        seed=seed,
    )
    for x, y in stream:
        features = {
            k: (str(int(v)) if k in _AGRAWAL_CATEGORIES else float(v)) for k, v in x.items()
        }
        yield features, int(y)


def _hyperplane_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    stream = synth.Hyperplane(
        seed=seed, n_features=10, n_drift_features=5, mag_change=0.001, noise_percentage=0.05
    )
    for x, y in stream:
        yield _numbered(x), int(y)


SYNTHETIC: dict[str, Synthetic] = {
    s.name: s
    for s in (
        Synthetic(
            "synth:sea-drift",
            "SEA (3 numbers in [0, 10], bool label, 10% label noise)",
            "abrupt: concept 0 -> 1 -> 2 -> 3 at examples 5,000, 10,000 and 15,000",
            20_000,
            _sea_rows,
        ),
        Synthetic(
            "synth:agrawal-drift",
            "Agrawal loan data (6 numbers, elevel/car/zipcode as categories, label 0/1)",
            "gradual: function 0 -> 2 centred on example 5,000, over about 1,000 examples",
            10_000,
            _agrawal_rows,
        ),
        Synthetic(
            "synth:hyperplane-drift",
            "rotating hyperplane (10 numbers in [0, 1], label 0/1, 5% noise)",
            "incremental: 5 of 10 weights move by 0.001 per example, from the first one",
            10_000,
            _hyperplane_rows,
        ),
    )
}


def dataset_rows(name: str, *, seed: int = 42) -> tuple[Iterable[Row], int | None]:
    """Rows of ``river:<Name>`` or ``synth:<name>`` and their count (None: endless)."""
    if name.startswith("synth:"):
        if name not in SYNTHETIC:
            raise ValueError(f"unknown synthetic stream {name!r}; known: {', '.join(SYNTHETIC)}")
        return SYNTHETIC[name].rows(seed), None
    rows = river_rows(name)
    size = getattr(rows, "n_samples", None)
    return rows, size if isinstance(size, int) else None


def is_dataset(source: str) -> bool:
    """True for ``river:...`` and ``synth:...`` names (anything else is a file)."""
    return source.startswith(("river:", "synth:"))


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
            {str(k): _json_value(v) for k, v in features.items()},
            _json_value(label),
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
