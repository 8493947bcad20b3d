"""The registry keeps the compacted topics it answers for: ``models`` (it is the writer)
and ``streams`` (it records every config ``driftline spec publish`` puts there).

On a compacted topic the last record under a key is the value every consumer that starts
after compaction sees. So when the last record under a key is unusable or not the
registry's current value, the registry re-asserts that value:

* ``models``, key ``<model>:v<n>``: the version's event, when the registry has that version;
  key ``<model>@<alias>``: the alias' latest move.
* ``streams``, key ``<stream>``: the newest config the registry recorded for the stream;
  nothing when it recorded none. A valid config newer than the newest recorded is left
  alone (``driftline spec publish`` records a config after the broker acknowledged it),
  and so is a tombstone (deleting a stream is an operator's act).

Re-asserting goes through the outbox, so the relay publishes it in order with every other
change: the outbox row of the current value is queued again (its original bytes and
``event_id``), or written again when it was pruned. Consumers de-duplicate by
``event_id`` (the model subscriber skips an event it applied; stream followers keep the
highest config version), so a re-assertion changes nothing for a consumer that already
holds the value, and seeing it again is the end of it: it is the current value. Nothing
is re-asserted while a newer value for the key waits in the outbox.

Every unusable record (not JSON, against the contract, a tombstone on ``models``, under a
key that is not its own) and every valid record under a key that the registry did not
write (an unknown ``event_id``, another artifact or config content than recorded, a
``models`` event without a valid signature of a known key: forged, or from before
events were signed, so an upgrade re-publishes every current value signed) is a
letter on ``events.dead`` and counted (``registry_dead_letters_total{reason}``);
re-assertions are counted by topic (``registry_reasserted_total{topic}``).

Keys are judged only once the reader is at the end of the topic, so reading history
(or a key's next record being one fetch away) never triggers a re-assertion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import (
    CATALOGUE,
    AliasMoved,
    AliasReason,
    Event,
    ModelVersionPublished,
    ReasonCode,
    StreamConfig,
    Topics,
    derive_id,
)
from services.common.compacted import Refusal, own_key, read_value
from services.common.dead_letters import DeadLetters
from services.common.kafka_client import assign_all
from services.common.metrics import Metrics
from services.common.signing import Keyring, SignatureError
from services.registry import repository as repo
from services.registry.metrics import WardenMetrics
from services.registry.sql_store import SqlStore
from services.registry.tables import AliasMoveRow, OutboxRow

__all__ = ["Warden", "judge", "unusable"]

log = logging.getLogger(__name__)
WATCHED = ("models", "streams")  # catalogue suffixes


@dataclass(frozen=True)
class Verdict:
    """What the last record under a key calls for."""

    letter: tuple[ReasonCode, str] | None = None  # a valid record the registry did not write
    reassert: Event | None = None  # the key's current value, to publish again


def unusable(suffix: str, key: bytes | None, value: bytes | None) -> tuple[ReasonCode, str] | None:
    """Why a record of ``models`` or ``streams`` is unusable by any consumer (None: usable).

    >>> unusable("streams", b"sea", b"{oops")[0].value
    'unparseable'
    >>> unusable("models", b"sea@champion", None)[1]
    'a tombstone under sea@champion: the registry never deletes a key'
    """
    if value is None:
        if suffix == "streams":
            return None  # a stream deleted
        name = key.decode(errors="replace") if key is not None else None
        return (
            ReasonCode.CONTRACT_VIOLATION,
            f"a tombstone under {name}: the registry never deletes a key",
        )
    found = read_value(CATALOGUE[suffix], key, value)
    return (found.reason, found.detail) if isinstance(found, Refusal) else None


def judge(
    session: Session,
    suffix: str,
    key: str,
    value: bytes | None,
    *,
    keyring: Keyring | None = None,
    http_url: str | None = None,
) -> Verdict:
    """What the last record under ``key`` calls for, by what the registry recorded.

    With a ``keyring``, a ``models`` record without a valid signature of a known key is
    foreign however right its content (a forgery, or written before events were signed):
    it is lettered and the key's current value re-asserted, signed by the relay.
    """
    if suffix == "streams":
        return _judge_stream(session, key, value)
    if keyring is not None and value is not None and _decoded(suffix, key, value) is not None:
        try:
            keyring.verify_event(value)
        except SignatureError as exc:
            current = judge(session, suffix, key, None, http_url=http_url)
            detail = f"a models record under {key} without a valid signature ({exc.reason})"
            return Verdict(
                letter=(ReasonCode.CONTRACT_VIOLATION, detail), reassert=current.reassert
            )
    if "@" in key:
        return _judge_alias(session, key, value)
    return _judge_version(session, key, value, http_url)


def _decoded(suffix: str, key: str, value: bytes | None) -> Event | None:
    found = read_value(CATALOGUE[suffix], key.encode(), value)
    return None if isinstance(found, Refusal) else found


def _judge_version(
    session: Session, key: str, value: bytes | None, http_url: str | None = None
) -> Verdict:
    model, _, number = key.rpartition(":v")
    found = (
        repo.get_version(session, model=model, version=int(number)) if number.isdigit() else None
    )
    current = repo.version_event(found, http_url=http_url) if found is not None else None
    event = _decoded("models", key, value)
    if isinstance(event, ModelVersionPublished) and current is not None:
        if event.event_id == current.event_id and event.artifact.sha256 == current.artifact.sha256:
            return Verdict()
    letter = None
    if event is not None:
        letter = (
            ReasonCode.CONTRACT_VIOLATION,
            f"a version event for {key} the registry did not write",
        )
    return Verdict(letter=letter, reassert=current)


def _judge_alias(session: Session, key: str, value: bytes | None) -> Verdict:
    model, _, alias = key.rpartition("@")
    rows = session.scalars(
        select(AliasMoveRow)
        .where(AliasMoveRow.model == model, AliasMoveRow.alias == alias)
        .order_by(AliasMoveRow.id.desc())
    ).all()
    current = _alias_event(rows[0]) if rows else None
    event = _decoded("models", key, value)
    if isinstance(event, AliasMoved) and current is not None:
        if event.event_id == current.event_id and event.to_version == current.to_version:
            return Verdict()  # by id: the bytes a relay re-sends are the move's own
    letter = None
    if event is not None and str(event.event_id) not in {r.event_id for r in rows}:
        letter = (
            ReasonCode.CONTRACT_VIOLATION,
            f"an alias move of {key} the registry did not write",
        )
    return Verdict(letter=letter, reassert=current)


def _alias_event(row: AliasMoveRow) -> AliasMoved:
    """The event the move published (same id and content)."""
    return AliasMoved(
        event_id=row.event_id,
        occurred_at=repo.aware(row.moved_at),
        model=row.model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=AliasReason(row.reason),
        actor=row.actor,
        evidence=row.evidence,
    )


def _judge_stream(session: Session, key: str, value: bytes | None) -> Verdict:
    if value is None:
        return Verdict()
    latest = repo.get_spec(session, stream=key)
    if latest is None:
        return Verdict()  # the registry has no record of this stream
    current = StreamConfig.model_validate(
        {
            **latest.config,
            "event_id": derive_id(f"{key}:v{latest.version}:{latest.sha256}", "streams"),
        }
    )
    event = _decoded("streams", key, value)
    if not isinstance(event, StreamConfig) or event.version is None:
        return Verdict(reassert=current)  # unusable: lettered as it was read
    if event.version > latest.version:
        return Verdict()  # published, not recorded yet
    recorded = repo.get_spec(session, stream=key, version=event.version)
    if recorded is None or recorded.sha256 != event.config_sha256():
        detail = f"a config of {key} v{event.version} the registry did not record"
        return Verdict(letter=(ReasonCode.CONTRACT_VIOLATION, detail), reassert=current)
    return Verdict() if event.version == latest.version else Verdict(reassert=current)


def requeue(session: Session, suffix: str, event: Event) -> bool:
    """Queue ``event`` in the outbox again, unless a value for its key is pending there;
    True when queued."""
    key = own_key(event)
    pending = session.scalars(
        select(OutboxRow.id).where(
            OutboxRow.topic == suffix, OutboxRow.key == key, OutboxRow.published_at.is_(None)
        )
    ).first()
    if pending is not None:
        return False
    row = session.scalars(
        select(OutboxRow).where(OutboxRow.event_id == str(event.event_id))
    ).first()
    if row is not None:
        row.published_at = None
    else:
        repo.add_outbox(session, topic=suffix, event=event)
    return True


class Warden:
    """Follows ``models`` and ``streams`` in a daemon thread and re-asserts what it must.

    Parameters
    ----------
    registry
        The registry's in-process store (its database is the truth).
    consumer_factory, producer_factory
        Build the group-less consumer and the producer of letters.
    topics
        Topic names under the prefix.
    metrics
        Where the counters are registered.
    on_reassert
        Called after a re-assertion was queued (the server wakes its relay).
    """

    def __init__(
        self,
        registry: SqlStore,
        *,
        consumer_factory: Callable[[], Any],
        producer_factory: Callable[[], Any],
        topics: Topics,
        metrics: Metrics,
        on_reassert: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self.topics = topics
        self.on_reassert = on_reassert
        self.suffix = {topics.name(s): s for s in WATCHED}
        own = WardenMetrics(metrics)
        self.dead, self.reasserted = own.dead, own.reasserted
        self.last: dict[tuple[str, str], tuple[bytes | None, Any]] = {}  # to judge
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warden", daemon=True)

    def start(self) -> None:
        """Start following (from the start of both topics)."""
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        consumer: Any = None
        producer: Any = None
        tps: list[Any] = []
        failing = False
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer_factory()
                    tps = assign_all(consumer, list(self.suffix))
                if producer is None:
                    producer = self._producer_factory()
                letters = DeadLetters(
                    producer, self.topics.name("events.dead"), service="registry", counter=self.dead
                )
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self.read(record, letters)
                if self.last and _at_end(consumer, tps):
                    self.settle(letters)
                    producer.flush()
            except Exception as exc:  # noqa: BLE001 - logged once per outage, retried
                if not failing:
                    log.warning("following models and streams failed, retrying: %s", exc)
                failing = True
                if consumer is not None and not tps:  # not assigned yet: start over
                    _close(consumer)
                    consumer = None
                self._stop.wait(2.0)
                continue
            if failing:
                log.info("following models and streams again")
            failing = False
        for client in (consumer, producer):
            if client is not None:
                _close(client)

    def read(self, record: Any, letters: DeadLetters) -> None:
        """Letter the record if it is unusable; remember it as its key's last."""
        suffix = self.suffix[record.topic]
        problem = unusable(suffix, record.key, record.value)
        if problem is not None:
            letters.send(record, *problem, what=f"unusable {suffix} record")
        if record.key is not None:
            self.last[(suffix, record.key.decode(errors="replace"))] = (record.value, record)

    def settle(self, letters: DeadLetters) -> None:
        """Judge the last record of every key read since the last call."""
        pending, self.last = self.last, {}
        queued = False
        for (suffix, key), (value, record) in pending.items():
            with self.registry._tx() as session:
                verdict = judge(
                    session,
                    suffix,
                    key,
                    value,
                    keyring=self.registry.keyring,
                    http_url=self.registry.http_url,
                )
                if verdict.reassert is not None and requeue(session, suffix, verdict.reassert):
                    queued = True
                    self.reasserted.labels(topic=suffix).inc()
                    log.warning("re-asserting the current value of %s %s", suffix, key)
            if verdict.letter is not None:
                letters.send(record, *verdict.letter, what=f"foreign {suffix} record")
        if queued:
            self.on_reassert()


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        log.debug("closing a client failed", exc_info=True)


def _at_end(consumer: Any, tps: list[Any]) -> bool:
    end = consumer.end_offsets(tps)
    return all(consumer.position(tp) >= end[tp] for tp in tps)
