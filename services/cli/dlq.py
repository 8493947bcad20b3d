"""``driftline dlq stats|show|replay``: the dead-letter topics.

``stats`` counts dead letters by stream and reason; ``show`` prints them with their
original bytes and source position; ``replay`` re-injects the original bytes of the
chosen dead letters into the topic they came from (their partition and key, a
``driftline-replayed-from`` header added), once the spec or the producer was fixed.
Ids are kept, so nothing is learned twice.

A letter is its ``event_id`` (derived from the rejected message's source position and
the reason) and the service that wrote it: a service that handles a message again after
a crash writes the same letter again, and those copies count once everywhere here.

``replay`` is idempotent per filter (dead-letter topic, reason and stream). Each filter
is a consumer group on the dead-letter topic whose offsets are committed once the
replayed messages were acknowledged; the letters before those offsets are what it has
replayed. A replay reads the whole topic and re-injects each message (its source topic,
key and original bytes) at most once: not when it has replayed it before, even if the
replayed message was rejected again and came back as a new letter, nor twice when the
message has several letters. The memory lives in Kafka, so it holds across invocations
and machines (until retention deletes the letters it remembers). ``--again`` forgets it.
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
from services.common.codec import decode
from services.common.errors import BrokerError, BrokerUnavailable, CodecError
from services.common.kafka_client import (
    end_offsets,
    make_admin,
    make_consumer,
    make_producer,
    subscribe_from_beginning,
)
from services.common.settings import DriftlineSettings
from services.console.output import print_table

REPLAY_HEADER = "driftline-replayed-from"
_READ_TIMEOUT_S = 120.0
_PREVIEW = 120

EPILOG = """\
A dead letter is counted once however many copies of it the topic holds: a service
that handles a message again after a crash writes the same letter (same event_id) again.

replay is idempotent per filter (--topic, --reason, --stream): it re-injects each
rejected message at most once, even when the replayed message is rejected again and
comes back as a new letter, and even when a message has several letters. What a filter
replayed is kept in Kafka (a consumer group on the dead-letter topic, committed once the
broker acknowledged the replay), so it holds across runs and machines; --again forgets it.
"""


def register(sub: Any) -> None:
    """Add the ``dlq`` command group."""
    parser = sub.add_parser(
        "dlq",
        help="inspect and replay dead letters",
        description="Inspect and replay dead letters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = parser.add_subparsers(dest="dlq_cmd", metavar="SUBCOMMAND", required=True)
    reasons = [r.value for r in ReasonCode]

    stats = cmds.add_parser(
        "stats", help="distinct dead letters counted by stream and reason (copies once)"
    )
    _common(stats)
    stats.set_defaults(func=stats_cmd)

    show = cmds.add_parser(
        "show", help="distinct dead letters: original bytes, reason, source offset"
    )
    _common(show)
    show.add_argument("--reason", choices=reasons, default=None, help="only this reason")
    show.add_argument("--limit", type=int, default=20, help="at most N (default: 20, oldest first)")
    show.set_defaults(func=show_cmd)

    replay = cmds.add_parser(
        "replay",
        help="re-inject the original bytes into the topic they came from, once per filter",
        description=(
            "Re-inject the original bytes of the chosen dead letters into the topic and "
            "partition they came from. Each message is replayed once per filter: running "
            "the same replay again sends nothing already replayed, even if it was rejected "
            "again."
        ),
    )
    _common(replay)
    replay.add_argument("--reason", choices=reasons, required=True, help="the reason to replay")
    replay.add_argument(
        "--again",
        action="store_true",
        help="forget what this filter replayed and replay every matching message once more",
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
    remembered: dict[int, int] | None = None,
    timeout_s: float = _READ_TIMEOUT_S,
) -> Iterator[tuple[Iterator[Any], Any]]:
    """Every record of ``topic`` up to its end when called, and the consumer reading them.

    Without ``group_id`` the whole topic is read; with one, from the group's committed
    offsets (the caller commits), or from the beginning when ``remembered`` is given: it
    is filled with the group's committed offsets by partition. Raises BrokerError when
    the end is not reached in time.
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
        if group_id is not None and remembered is not None:
            remembered.update(subscribe_from_beginning(consumer, topic))
        else:
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


def distinct_letters(
    settings: DriftlineSettings, topic: str
) -> Iterator[tuple[Any, DeadLetter | None, int]]:
    """``(record, letter, copies)`` once per distinct letter, in the order first seen.

    A letter is its ``event_id`` and service; an unreadable record is its own letter.
    ``copies`` counts the records of the letter on the topic (1 when not duplicated).
    """
    seen: dict[tuple[str, ...], list[Any]] = {}
    for record, letter in dead_letters(settings, topic):
        key = (
            ("unreadable", str(record.partition), str(record.offset))
            if letter is None
            else (str(letter.event_id), letter.service)
        )
        if key in seen:
            seen[key][2] += 1
        else:
            seen[key] = [record, letter, 1]
    for record, letter, copies in seen.values():
        yield record, letter, copies


def _letter(record: Any) -> DeadLetter | None:
    try:
        letter = decode(record.value or b"", DeadLetter)
    except CodecError:
        return None
    return letter if isinstance(letter, DeadLetter) else None


def stats_cmd(args: argparse.Namespace) -> int:
    """Print distinct dead letters by stream and reason, the distinct messages they reject
    and the duplicate copies not counted."""
    settings = DriftlineSettings.load()
    topic = Topics(settings.topic_prefix).name(args.topic)
    counts: Counter[tuple[str, str]] = Counter()
    copies: Counter[tuple[str, str]] = Counter()
    messages: dict[tuple[str, str], set[Any]] = {}
    for record, letter, n in distinct_letters(settings, topic):
        message: Any
        if letter is None:
            key, message = ("?", "unreadable"), (record.partition, record.offset)
        elif args.stream is None or letter.stream == args.stream:
            key, message = (letter.stream or "-", letter.reason.value), message_of(letter)
        else:
            continue
        counts[key] += 1
        copies[key] += n - 1
        messages.setdefault(key, set()).add(message)
    rows = [
        (stream, reason, n, len(messages[(stream, reason)]), copies[(stream, reason)])
        for (stream, reason), n in sorted(counts.items())
    ]
    if not args.json:
        every = set().union(*messages.values()) if messages else set()
        rows.append(("total", "", sum(counts.values()), len(every), sum(copies.values())))
    print_table(
        f"dead letters in {topic}: each letter once, however many copies the topic holds",
        ("stream", "reason", "count", "messages", "duplicates"),
        rows,
        as_json=args.json,
    )
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    """Print distinct dead letters (oldest first) with the original bytes and source."""
    settings = DriftlineSettings.load()
    topic = Topics(settings.topic_prefix).name(args.topic)
    rows: list[tuple[Any, ...]] = []
    for record, letter, copies in distinct_letters(settings, topic):
        if letter is None or len(rows) >= args.limit:
            continue
        if args.reason is not None and letter.reason.value != args.reason:
            continue
        if args.stream is not None and letter.stream != args.stream:
            continue
        rows.append((*_show_row(record, letter, full=args.json), copies))
    columns = (
        "dead_letter",
        "source",
        "stream",
        "example_id",
        "reason",
        "detail",
        "original",
        "copies",
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


def message_of(letter: DeadLetter) -> tuple[str, bytes | None, str]:
    """What a replay re-injects, and so what it remembers: the source topic, key and the
    sha256 of the original bytes (the same raw ``event_id`` and content: a replayed
    message rejected again has a new source position but the same bytes)."""
    return letter.source_topic, letter.source_key, hashlib.sha256(letter.original).hexdigest()


def replay_cmd(args: argparse.Namespace) -> int:
    """Re-inject the chosen dead letters' original bytes, each message once per filter;
    commits the filter's group once all were acknowledged."""
    settings = DriftlineSettings.load()
    topics = Topics(settings.topic_prefix)
    topic = topics.name(args.topic)
    group = replay_group(settings.topic_prefix, args.topic, args.reason, args.stream)
    if args.again and not args.dry_run:
        _forget(settings, group)
    # a dry run with --again reads everything and touches no group
    reader_group = None if (args.dry_run and args.again) else group
    remembered: dict[int, int] = {}
    chosen: dict[tuple[str, bytes | None, str], tuple[Any, DeadLetter]] = {}
    repeated = 0
    rejected_again = 0
    foreign = 0
    with topic_records(settings, topic, group_id=reader_group, remembered=remembered) as (
        records,
        consumer,
    ):
        replayed_before: set[tuple[str, bytes | None, str]] = set()  # by earlier runs
        pending: list[tuple[Any, DeadLetter]] = []
        for record in records:
            letter = _letter(record)
            if letter is None or letter.reason.value != args.reason:
                continue
            if args.stream is not None and letter.stream != args.stream:
                continue
            if record.offset < remembered.get(record.partition, 0):
                replayed_before.add(message_of(letter))
            else:
                pending.append((record, letter))
        for record, letter in pending:
            message = message_of(letter)
            if not _ours(letter.source_topic, topics):
                foreign += 1
            elif message in replayed_before:
                rejected_again += 1  # replayed before, rejected again: not again
            elif message in chosen:
                repeated += 1  # another letter (or a copy) of a message already chosen
            else:
                chosen[message] = (record, letter)
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
        console.print(f"{repeated} more letter(s) of the same messages: each replayed once")
    if rejected_again:
        console.print(
            f"{rejected_again} letter(s) of messages this filter replayed before and that "
            "were rejected again: not replayed (--again replays them)"
        )
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
    # kafka-python 3 answers {group: "OK" or an error's name}; 2.x [(group, error)]
    for _group, error in results.items() if isinstance(results, dict) else results:
        if isinstance(error, str):
            name = error
        else:
            name = error.__name__ if isinstance(error, type) else type(error).__name__
        if name not in ("OK", "NoError", "GroupIdNotFoundError"):
            raise BrokerError(
                f"could not reset the replay group {group!r}: {name} (is a replay running?)"
            )
