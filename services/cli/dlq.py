"""``driftline dlq stats|show|replay``: the dead-letter topics.

``stats`` counts dead letters by stream and reason; ``show`` prints them with their
original bytes and source position; ``replay`` re-injects the original bytes of the
chosen dead letters into the topic they came from (their partition and key, a
``driftline-replayed-from`` header added), once the spec or the producer was fixed.
Ids are kept, so nothing is learned twice.

``replay`` remembers what it replayed: each filter (reason and stream) is a consumer
group on the dead-letter topic whose offsets are committed once the replayed messages
were acknowledged, so running it again only replays letters rejected since (a message
that fails again comes back as a new letter). ``--again`` starts from the beginning.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from schemas import DeadLetter, ReasonCode, Topics
from services.cli.output import print_table
from services.common.codec import decode
from services.common.errors import BrokerError, BrokerUnavailable, CodecError
from services.common.kafka_client import end_offsets, make_admin, make_consumer, make_producer
from services.common.settings import DriftlineSettings

REPLAY_HEADER = "driftline-replayed-from"
_READ_TIMEOUT_S = 120.0
_PREVIEW = 120


def register(sub: Any) -> None:
    """Add the ``dlq`` command group."""
    parser = sub.add_parser("dlq", help="inspect and replay dead letters")
    cmds = parser.add_subparsers(dest="dlq_cmd", metavar="SUBCOMMAND", required=True)
    reasons = [r.value for r in ReasonCode]

    stats = cmds.add_parser("stats", help="dead letters counted by stream and reason")
    _common(stats)
    stats.set_defaults(func=stats_cmd)

    show = cmds.add_parser("show", help="dead letters: original bytes, reason, source offset")
    _common(show)
    show.add_argument("--reason", choices=reasons, default=None, help="only this reason")
    show.add_argument("--limit", type=int, default=20, help="at most N (default: 20, oldest first)")
    show.set_defaults(func=show_cmd)

    replay = cmds.add_parser(
        "replay", help="re-inject the original bytes into the topic they came from"
    )
    _common(replay)
    replay.add_argument("--reason", choices=reasons, required=True, help="the reason to replay")
    replay.add_argument(
        "--again", action="store_true", help="also replay letters an earlier replay handled"
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="count what would be replayed, send nothing"
    )
    replay.set_defaults(func=replay_cmd)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", default=None, help="only this stream")
    parser.add_argument(
        "--topic",
        default="examples.dead",
        choices=("examples.dead", "events.dead"),
        help="dead-letter topic (default: examples.dead)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


@contextmanager
def topic_records(
    settings: DriftlineSettings,
    topic: str,
    *,
    group_id: str | None = None,
    timeout_s: float = _READ_TIMEOUT_S,
) -> Iterator[tuple[Iterator[Any], Any]]:
    """Every record of ``topic`` up to its end when called, and the consumer reading them.

    Without ``group_id`` the whole topic is read; with one, from the group's committed
    offsets (the caller commits). Raises BrokerError when the end is not reached in time.
    """
    try:
        end = end_offsets(settings, topic)
    except BrokerUnavailable as exc:
        raise BrokerUnavailable(f"{exc}; create the topics with `driftline topics create`") from exc
    consumer = make_consumer(
        settings,
        group_id=group_id,
        client_id="driftline-cli",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )

    def records() -> Iterator[Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for batch in consumer.poll(timeout_ms=500).values():
                yield from batch
            assigned = consumer.assignment()
            if len(assigned) == len(end) and all(
                consumer.position(tp) >= end.get(tp.partition, 0) for tp in assigned
            ):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"timed out reading {topic} to its end"
                    + (f" (is another member of group {group_id} running?)" if group_id else "")
                )

    try:
        consumer.subscribe([topic])
        yield records(), consumer
    finally:
        consumer.close()


def dead_letters(
    settings: DriftlineSettings, topic: str, *, group_id: str | None = None
) -> Iterator[tuple[Any, DeadLetter | None]]:
    """``(record, letter)`` for every record of a dead-letter topic (letter None: unreadable)."""
    with topic_records(settings, topic, group_id=group_id) as (records, _consumer):
        for record in records:
            yield record, _letter(record)


def _letter(record: Any) -> DeadLetter | None:
    try:
        letter = decode(record.value or b"", DeadLetter)
    except CodecError:
        return None
    return letter if isinstance(letter, DeadLetter) else None


def stats_cmd(args: argparse.Namespace) -> int:
    """Print dead letters counted by stream and reason."""
    settings = DriftlineSettings.load()
    topic = Topics(settings.topic_prefix).name(args.topic)
    counts: Counter[tuple[str, str]] = Counter()
    for _record, letter in dead_letters(settings, topic):
        if letter is None:
            counts[("?", "unreadable")] += 1
        elif args.stream is None or letter.stream == args.stream:
            counts[(letter.stream or "-", letter.reason.value)] += 1
    rows = [(s, r, n) for (s, r), n in sorted(counts.items())]
    if not args.json:
        rows.append(("total", "", sum(counts.values())))
    print_table(f"dead letters in {topic}", ("stream", "reason", "count"), rows, as_json=args.json)
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    """Print dead letters (oldest first) with the original bytes and source position."""
    settings = DriftlineSettings.load()
    topic = Topics(settings.topic_prefix).name(args.topic)
    rows: list[tuple[Any, ...]] = []
    for record, letter in dead_letters(settings, topic):
        if letter is None or len(rows) >= args.limit:
            continue
        if args.reason is not None and letter.reason.value != args.reason:
            continue
        if args.stream is not None and letter.stream != args.stream:
            continue
        rows.append(_show_row(record, letter, full=args.json))
    columns = (
        "dead_letter",
        "source",
        "stream",
        "example_id",
        "reason",
        "detail",
        "original",
    )
    print_table(f"dead letters in {topic}", columns, rows, as_json=args.json)
    return 0


def _show_row(record: Any, letter: DeadLetter, *, full: bool) -> tuple[Any, ...]:
    original = letter.original
    try:
        text = original.decode("utf-8")
        shown = text if full or len(text) <= _PREVIEW else text[:_PREVIEW] + "..."
    except UnicodeDecodeError:
        shown = "base64:" + base64.b64encode(original if full else original[:_PREVIEW]).decode()
    return (
        f"{record.partition}/{record.offset}",
        f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}",
        letter.stream,
        letter.example_id,
        letter.reason.value,
        letter.detail,
        shown,
    )


def replay_cmd(args: argparse.Namespace) -> int:
    """Re-inject the chosen dead letters' original bytes; commits once all were acked."""
    settings = DriftlineSettings.load()
    topics = Topics(settings.topic_prefix)
    topic = topics.name(args.topic)
    group = replay_group(settings.topic_prefix, args.topic, args.reason, args.stream)
    if args.again and not args.dry_run:
        _forget(settings, group)
    # a dry run with --again reads everything and touches no group
    reader_group = None if (args.dry_run and args.again) else group
    chosen: dict[tuple[str, bytes | None, str], tuple[Any, DeadLetter]] = {}
    repeated = 0
    foreign = 0
    with topic_records(settings, topic, group_id=reader_group) as (records, consumer):
        for record in records:
            letter = _letter(record)
            if letter is None or letter.reason.value != args.reason:
                continue
            if args.stream is not None and letter.stream != args.stream:
                continue
            if not _ours(letter.source_topic, topics):
                foreign += 1
                continue
            identity = (
                letter.source_topic,
                letter.source_key,
                hashlib.sha256(letter.original).hexdigest(),
            )
            if identity in chosen:
                repeated += 1  # the same message rejected again by an earlier replay
            chosen[identity] = (record, letter)
        per_stream = Counter((letter.stream or "-") for _record, letter in chosen.values())
        if not args.dry_run and chosen:
            _reinject(settings, topic, list(chosen.values()))
        if not args.dry_run:
            consumer.commit()
    verb = "would replay" if args.dry_run else "replayed"
    rows = [(stream, args.reason, n) for stream, n in sorted(per_stream.items())]
    print_table(f"{verb} from {topic}", ("stream", "reason", "replayed"), rows, as_json=args.json)
    console = Console(stderr=True)
    if repeated:
        console.print(f"{repeated} repeated letter(s) of the same message replayed once")
    if foreign:
        console.print(f"{foreign} letter(s) from topics outside {settings.topic_prefix!r} skipped")
    if not chosen:
        console.print(
            "nothing to replay"
            + (
                ""
                if args.again
                else " (earlier replays are remembered; --again replays those letters too)"
            )
        )
    return 0


def replay_group(prefix: str, topic: str, reason: str, stream: str | None) -> str:
    """The consumer group that remembers what a replay filter has replayed."""
    return f"{prefix}dlq-replay.{topic}.{reason}.{stream or 'all-streams'}"


def _ours(source_topic: str, topics: Topics) -> bool:
    try:
        topics.spec_of(source_topic)
    except KeyError:
        return False
    return True


def _reinject(
    settings: DriftlineSettings, dead_topic: str, letters: list[tuple[Any, DeadLetter]]
) -> None:
    producer = make_producer(settings, client_id="driftline-dlq-replay", linger_ms=10)
    failures: list[BaseException] = []
    partitions: dict[str, int] = {}
    try:
        for record, letter in letters:
            target = letter.source_topic
            if target not in partitions:
                partitions[target] = len(end_offsets(settings, target))
            partition = (
                letter.source_partition if letter.source_partition < partitions[target] else None
            )
            origin = f"{dead_topic}/{record.partition}/{record.offset}".encode()
            future = producer.send(
                target,
                key=letter.source_key,
                value=letter.original,
                partition=partition,
                headers=[(REPLAY_HEADER, origin)],
            )
            future.add_errback(failures.append)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise BrokerError(
            f"{len(failures)} replayed message(s) were not acknowledged ({failures[0]}); "
            "nothing was marked as replayed, run the same command again"
        )


def _forget(settings: DriftlineSettings, group: str) -> None:
    """Drop a replay group's memory (its committed offsets), for ``--again``."""
    admin = make_admin(settings)
    try:
        results = admin.delete_groups([group])
    finally:
        admin.close()
    for _group, error in results:
        name = error.__name__ if isinstance(error, type) else type(error).__name__
        if name not in ("NoError", "GroupIdNotFoundError"):
            raise BrokerError(
                f"could not reset the replay group {group!r}: {name} (is a replay running?)"
            )
