"""``driftline produce SOURCE``: replay a file or a dataset as labelled examples.

SOURCE is a CSV or JSON Lines file, a River dataset that ships offline
(``river:Phishing``, ``river:Bananas``, ...) or a synthetic drifting stream
(``synth:sea-drift``, ``synth:agrawal-drift``, ``synth:hyperplane-drift``). A file's rows
may name their stream (a ``stream`` field or column), so one file can feed many streams;
rows that name none go to ``--stream`` (default: the file's stem). Every example goes to
``examples.raw`` keyed by its stream, with acks=all and idempotence; the summary has a
row per stream. Ctrl-C stops reading, flushes what was sent and reports it.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from schemas import LabelledExample, Topics
from services.common.errors import BrokerUnavailable, ConfigError
from services.common.kafka_backend import open_producer
from services.common.kafka_client import end_offsets
from services.common.settings import DriftlineSettings
from services.console.output import print_table, progress_bar
from services.ingest.datasets import SYNTHETIC, dataset_rows, is_dataset
from services.ingest.producer import PRODUCE_OVERRIDES, SendReport, encode_raw, send_all
from services.ingest.sources import (
    Columns,
    Record,
    Skipped,
    dataset_records,
    read_file,
    to_events,
)

_STREAM = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_SHOW_SKIPPED = 5


def register(sub: Any) -> None:
    """Add the ``produce`` command."""
    synth = "; ".join(f"{name}: {s.drifts}" for name, s in SYNTHETIC.items())
    parser = sub.add_parser(
        "produce",
        help="replay a CSV/JSONL file or a dataset as labelled examples to examples.raw",
        description=(
            "Replay SOURCE as labelled-example events to examples.raw. SOURCE is a .csv "
            "or .jsonl file, river:<Dataset> (offline River datasets such as "
            "river:Phishing, river:Bananas) or a synthetic drifting stream with a fixed "
            f"seed ({synth}). A file's rows may name their stream in a `stream` field or "
            "column (--stream-column); rows that name none go to --stream."
        ),
    )
    parser.add_argument("source", help="FILE.csv, FILE.jsonl, river:NAME or synth:NAME")
    add_source_options(parser)
    parser.add_argument(
        "--rate", type=_positive_float, default=None, metavar="N", help="events per second"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=produce_cmd)


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``produce`` and ``spec infer``: stream, columns, limit, seed."""
    parser.add_argument(
        "--stream",
        default=None,
        help="stream name; for a file whose rows name their stream, the stream of rows that "
        "name none (default: the file's stem or dataset name)",
    )
    parser.add_argument(
        "--stream-column",
        default=None,
        help="field or column naming each row's stream (default: stream, when present; "
        "not a feature)",
    )
    parser.add_argument(
        "--id-column",
        default=None,
        help="column of example ids (default: example_id, else row number)",
    )
    parser.add_argument("--label-column", default=None, help="column of labels (default: label)")
    parser.add_argument(
        "--timestamp-column",
        default=None,
        help="column of event times, ISO 8601 or epoch seconds (default: event_time if "
        "present, else the time of sending)",
    )
    parser.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N", help="at most N examples"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of synthetic streams (default: 42)"
    )


def stream_name(args: argparse.Namespace) -> str:
    """The stream to produce to: ``--stream``, else derived from the source."""
    if args.stream is not None:
        name = str(args.stream)
    elif is_dataset(args.source):
        name = args.source.partition(":")[2].lower()
    else:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(args.source).stem).strip("-") or "stream"
    if not _STREAM.match(name):
        raise ConfigError("--stream", f"{name!r}: use 1-200 letters, digits, '.', '_' or '-'")
    return name


def open_source(
    args: argparse.Namespace,
) -> tuple[Iterable[Record | Skipped], int | None, int | None]:
    """The records of ``args.source``, how many there are (if known) and the limit to apply."""
    limit: int | None = args.limit
    if is_dataset(args.source):
        try:
            rows, size = dataset_rows(args.source, seed=args.seed)
        except ValueError as exc:
            raise ConfigError("source", str(exc)) from exc
        if size is None and limit is None:
            limit = SYNTHETIC[args.source].default_limit
        total = min(x for x in (size, limit) if x is not None) if (size or limit) else None
        return dataset_records(rows), total, limit
    path = Path(args.source)
    if not path.is_file():
        raise ConfigError("source", f"{path} is not a file, river:NAME or synth:NAME")
    columns = Columns(args.id_column, args.label_column, args.timestamp_column, args.stream_column)
    try:
        records = read_file(path, columns)
        first = next(records, None)  # reads the header: a bad column fails here
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("source", f"{path}: {exc}") from exc
    lines = _count_lines(path)
    total = min(lines, limit) if limit is not None else lines

    def chained() -> Iterator[Record | Skipped]:
        if first is not None:
            yield first
        yield from records

    return chained(), total, limit


def produce_cmd(args: argparse.Namespace) -> int:
    """Send the source's examples; 0 when every one was acknowledged."""
    settings = DriftlineSettings.load()
    stream = stream_name(args)
    records, total, limit = open_source(args)
    raw = Topics(settings.topic_prefix).name("examples.raw")
    try:
        end_offsets(settings, raw)
    except BrokerUnavailable as exc:
        raise BrokerUnavailable(f"{exc}; create the topics with `driftline topics create`") from exc

    skipped: list[Skipped] = []

    def examples() -> Iterator[LabelledExample]:
        for item in to_events(stream, records, limit=limit):
            if isinstance(item, Skipped):
                skipped.append(item)
            else:
                yield item

    console = Console(stderr=True)
    producer = open_producer(settings, **PRODUCE_OVERRIDES)  # DRIFTLINE_KAFKA_CLIENT
    interrupted = False
    try:
        with progress_bar(console) as progress:
            task = progress.add_task(f"produce {args.source} -> {raw}", total=total)
            try:
                report = send_all(
                    producer,
                    raw,
                    examples(),
                    on_progress=lambda n: progress.advance(task, n),
                    rate=args.rate,
                    encoder=encode_raw,
                )
            except KeyboardInterrupt as exc:
                report = getattr(exc, "report", SendReport())
                interrupted = True
    finally:
        producer.close()
    _summary(args, stream, raw, report, skipped, interrupted, console)
    if interrupted:
        return 130
    return 1 if report.failed else 0


def _summary(
    args: argparse.Namespace,
    stream: str,
    topic: str,
    report: SendReport,
    skipped: list[Skipped],
    interrupted: bool,
    console: Console,
) -> None:
    """One row per stream (in order of first appearance; the default stream always),
    then the totals when there are several streams, and the first problems."""
    skipped_by_stream = Counter(item.stream or stream for item in skipped)
    streams = dict.fromkeys(
        [stream, *report.sent_by_stream, *report.failed_by_stream, *skipped_by_stream]
    )
    if len(streams) > 1 and not any(
        (report.sent_by_stream[stream], report.failed_by_stream[stream], skipped_by_stream[stream])
    ):
        del streams[stream]  # every row named its stream: no row for the unused default
    elapsed = report.elapsed_s
    columns = ("stream", "topic", "sent", "failed", "skipped", "elapsed_s", "events_per_s")
    rows = [
        (
            name,
            topic,
            report.sent_by_stream[name],
            report.failed_by_stream[name],
            skipped_by_stream[name],
            round(elapsed, 3),
            round(report.sent_by_stream[name] / elapsed if elapsed > 0 else 0.0, 1),
        )
        for name in streams
    ]
    title = "produce: interrupted, flushed what was sent" if interrupted else "produce"
    print_table(title, columns, rows, as_json=args.json)
    if len(rows) > 1:
        console.print(
            f"produce: {len(rows)} streams, {report.sent} sent, {report.failed} failed, "
            f"{len(skipped)} skipped in {elapsed:.1f}s ({report.rate:,.0f} events/s)",
            markup=False,
        )
    for item in skipped[:_SHOW_SKIPPED]:
        console.print(f"skipped line {item.line}: {item.reason}", markup=False)
    if len(skipped) > _SHOW_SKIPPED:
        console.print(f"... and {len(skipped) - _SHOW_SKIPPED} more skipped rows")
    for error in report.errors[:_SHOW_SKIPPED]:
        console.print(f"delivery failed: {error}", markup=False)


def _count_lines(path: Path) -> int:
    """Data rows of a file: lines, less the CSV header."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - 1) if path.suffix.lower() == ".csv" else lines


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value
