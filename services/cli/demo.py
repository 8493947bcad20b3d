"""``driftline demo``: the main job on the embedded defaults.

For now: start the local broker (unless ``DRIFTLINE_KAFKA_BOOTSTRAP`` is set), create the
topics, produce real River datasets as labelled-example events, consume them back and
print counts and throughput.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from functools import partial
from typing import Any

from rich.console import Console

from schemas import LabelledExample, Topics
from services.cli.output import print_table, progress_bar
from services.common.codec import decode
from services.common.errors import DriftlineError
from services.common.kafka_client import (
    end_offsets,
    ensure_topics,
    make_admin,
    make_producer,
    read_between,
)
from services.common.logs import configure_logging
from services.common.settings import DriftlineSettings
from services.ingest.producer import send_all
from services.ingest.sources import as_examples, river_rows
from services.localbroker.process import LocalBroker

DATASETS = {"bananas": "river:Bananas", "phishing": "river:Phishing"}


def register(sub: Any) -> None:
    """Add the ``demo`` command."""
    parser = sub.add_parser("demo", help="run the demo on the embedded defaults")
    parser.add_argument("--limit", type=int, default=None, help="examples per dataset")
    parser.add_argument(
        "--keep-broker", action="store_true", help="leave a broker the demo started running"
    )
    parser.set_defaults(func=demo_cmd)


def demo_cmd(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 when every produced example was read back."""
    settings = DriftlineSettings.load()
    configure_logging("demo", fmt=settings.log_format, level="WARNING")
    console = Console()
    broker: LocalBroker | None = None
    if settings.uses_local_broker:
        broker = LocalBroker.from_data_dir(settings.data_path, settings.cache_path)
        was_running = broker.status().running
        console.print(f"[bold]broker[/]: starting the local Kafka broker in {broker.data_dir}")
        broker.start()
        if was_running:
            broker = None  # not ours to stop
    else:
        console.print(f"[bold]broker[/]: using DRIFTLINE_KAFKA_BOOTSTRAP={settings.bootstrap}")
    try:
        return _run(settings, console, args.limit)
    finally:
        if broker is not None and not args.keep_broker:
            console.print("[bold]broker[/]: stopping the local broker")
            broker.stop()


def _run(settings: DriftlineSettings, console: Console, limit: int | None) -> int:
    topics = Topics(settings.topic_prefix)
    admin = make_admin(settings)
    try:
        changes = ensure_topics(admin, topics.all())
    finally:
        admin.close()
    created = sum(c.action == "created" for c in changes)
    console.print(f"[bold]topics[/]: {len(changes)} in the catalogue, {created} created")

    raw = topics.name("examples.raw")
    before = end_offsets(settings, raw)
    produced: Counter[str] = Counter()
    producer = make_producer(settings)
    produce_s = 0.0
    try:
        with progress_bar(console) as progress:
            for stream, dataset in DATASETS.items():
                source = river_rows(dataset)
                size = getattr(source, "n_samples", None)
                total = min(limit, size) if limit and size else (limit or size)
                task = progress.add_task(f"produce {dataset}", total=total)
                events = as_examples(stream, source, limit=limit, id_prefix="demo-")
                report = send_all(
                    producer, raw, events, on_progress=partial(progress.advance, task)
                )
                produced[stream] = report.sent
                produce_s += report.elapsed_s
                if report.failed:
                    raise DriftlineError(f"{report.failed} events failed: {report.errors[:3]}")
    finally:
        producer.close()
    after = end_offsets(settings, raw)

    consumed: Counter[str] = Counter()
    ids: set[tuple[str, str]] = set()
    started = time.perf_counter()
    spec = topics.spec_of(raw)
    for record in read_between(settings, raw, before, after):
        event = decode(record.value, spec)
        assert isinstance(event, LabelledExample)  # noqa: S101 - the topic's only class
        consumed[event.stream] += 1
        ids.add((event.stream, event.example_id))
    consume_s = time.perf_counter() - started

    rows = [(s, produced[s], consumed[s], len({i for st, i in ids if st == s})) for s in DATASETS]
    print_table(
        "demo: produced and consumed back", ("stream", "produced", "consumed", "distinct"), rows
    )
    total = sum(produced.values())
    console.print(
        f"produce: {total} events in {produce_s:.2f}s ({total / max(produce_s, 1e-9):,.0f}/s, "
        f"acks=all)   consume: {sum(consumed.values())} in {consume_s:.2f}s "
        f"({sum(consumed.values()) / max(consume_s, 1e-9):,.0f}/s)"
    )
    ok = produced == consumed and len(ids) == total
    console.print("[green]all events read back[/]" if ok else "[red]events missing[/]")
    return 0 if ok else 1
