"""The evaluator's edge: labelled examples and shadow pairs in; metric snapshots and
compare-and-set alias moves (promotion, rollback) out.

**One active instance** holds the :class:`~services.evaluator.lease.Lease`. It reads
``examples.valid`` and ``shadow`` with a group-less consumer from the offsets stored in
its checkpoint, so a takeover continues exactly where the last checkpoint stopped. In
the brief window of a takeover after a crash two instances may both score the same
examples: their snapshots carry the same deterministic event ids, and alias moves are
compare-and-set on the registry, so at most one of two identical decisions can move an
alias.

**Which versions** are scored (champion, challenger or the online snapshot as a standing
challenger, a promoted champion's predecessor) is :mod:`services.evaluator.scored_versions`;
a decision is carried out by :class:`~services.evaluator.alias_mover.AliasMover`.

**No poison pills.** A record the evaluator cannot use is a counted letter on
``events.dead`` (``evaluator_dead_letters_total{reason}``), never a crash and never
scored: on ``examples.valid``, one that is not JSON, breaks the contract, names a stream
without a config or breaks its stream's spec (whoever wrote it); on ``shadow``, a pair
whose answers the stream's spec rules out; and any record a model fails on or that
raises while it is handled (``handler_error``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition

from schemas import (
    LabelledExample,
    ReasonCode,
    ShadowPair,
    StreamConfig,
    Topics,
)
from services.common.codec import decode, encode, event_key
from services.common.conformance import nonconformance
from services.common.dead_letters import DeadLetters
from services.common.errors import BrokerError, CodecError
from services.common.kafka_backend import open_consumer, open_producer
from services.common.kafka_types import Consumer
from services.common.metrics import BoundedStreams
from services.common.online_follower import FollowMetrics
from services.common.online_followers import Followers
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.common.stream_configs import StreamConfigs
from services.common.subscriber import REFUSALS, ModelSubscriber
from services.evaluator.alias_mover import AliasMover
from services.evaluator.lease import Lease
from services.evaluator.metrics import EvaluatorMetrics
from services.evaluator.scored_versions import ALIASES, ScoredVersions
from services.evaluator.screen import pair_nonconformance
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.state import Decision, EvaluatorState, Labelled
from services.registry.client import Registry

log = logging.getLogger(__name__)
OWNER = "evaluator"


class Evaluator:
    """One evaluator process (active or standby)."""

    def __init__(
        self, settings: DriftlineSettings, service: EvaluatorSettings, registry: Registry
    ) -> None:
        self.settings = settings
        self.service = service
        self.registry = registry
        self.topics = Topics(settings.topic_prefix)
        self.valid = self.topics.name("examples.valid")
        self.shadow = self.topics.name("shadow")
        self.state = self._fresh_state()
        self.active = False
        self.versions = ScoredVersions(registry, online_challenger=service.online_challenger)
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self._records: dict[tuple[str, int, int], Any] = {}  # this step's labelled records
        self.metrics = m = EvaluatorMetrics()
        self.streams = BoundedStreams(service.metrics_streams or None)  # the stream label
        self.examples = m.examples
        self.skipped = m.skipped
        self.values = m.values
        self.served_version = m.served_version
        self.decisions = m.decisions
        self.pairs = m.pairs
        self.active_gauge = m.active_gauge
        self.dead = m.dead
        self.checkpoints = m.checkpoints
        self.events_refused = m.events_refused
        self.load_failures = m.load_failures
        for kind in REFUSALS:
            self.events_refused.labels(kind=kind)
        self.configs = StreamConfigs(settings, client_id="driftline-evaluator")
        # the data path (valid and shadow records in, metrics and decisions out) runs on
        # DRIFTLINE_KAFKA_CLIENT; the lease is coordination and stays on kafka-python
        self.producer = open_producer(settings, client_id="driftline-evaluator")
        self.dead_letters = DeadLetters(
            self.producer, self.topics.name("events.dead"), service="evaluator", counter=self.dead
        )
        self.lease = Lease(
            settings,
            group_id=service.group_id,
            session_timeout_ms=service.session_timeout_ms,
            on_revoked=self._on_revoked,
            on_lost=self._on_lost,
        )
        self.data: Consumer = open_consumer(
            settings,
            group_id=None,
            client_id="driftline-evaluator",
            max_poll_records=service.max_poll_records,
        )
        self.mover = AliasMover(registry)
        # Online snapshots keep learning, each record after it was scored here (no thread:
        # a model never learns a record before it is scored on it).
        self.followers = (
            Followers(
                settings,
                metrics=FollowMetrics(m, "evaluator"),
                client_id="driftline-evaluator-follow",
                threaded=False,
            )
            if service.follow
            else None
        )
        self.subscriber = ModelSubscriber(
            settings,
            aliases=ALIASES,
            on_swap=self.versions.swapped,
            on_remove=self.followers.removed if self.followers is not None else None,
            on_failure=lambda f: self.load_failures.labels(reason=f.reason).inc(),
            on_refusal=lambda kind: self.events_refused.labels(kind=kind).inc(),
            client_id="driftline-evaluator-models",
            prepare=self.followers.prepare if self.followers is not None else None,
        )

    def _fresh_state(self) -> EvaluatorState:
        s = self.service
        return EvaluatorState(
            snapshot_every=s.snapshot_every,
            dedupe_ids=s.dedupe_ids,
            join_window_s=s.join_window_s,
            join_max_pending=s.join_max_pending,
            look_every=s.look_every,
            rollback_min_examples=s.rollback_min_examples,
        )

    # -- leadership -----------------------------------------------------------------

    def _on_revoked(self) -> None:
        if self.active:
            self._resign()

    def _on_lost(self) -> None:
        """Evicted from the group (a missed session): another instance may be active
        already, so nothing is saved; its checkpoint is the truth from now on."""
        if self.active:
            log.warning("lease lost by eviction: standing by without a checkpoint")
            self.active = False
            self.active_gauge.set(0)

    def _acquire(self) -> None:
        """Become the active instance: restore the checkpoint, seek, start reading."""
        cp = self.registry.load_checkpoint(owner=OWNER, key=self.service.group_id)
        if cp is not None and isinstance(cp.state, EvaluatorState):
            self.state = cp.state
            log.info("active: restored checkpoint %s", cp.sha256[:12])
        else:
            self.state = self._fresh_state()
            log.info("active: no checkpoint, reading from the %s", self.service.start_from)
        tps: list[TopicPartition] = []
        for topic in (self.valid, self.shadow):
            parts = self.data.partitions_for_topic(topic)
            if not parts:
                raise BrokerError(f"topic {topic!r} does not exist; run `driftline topics create`")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self.data.assign(tps)
        for tp in tps:
            offset = self.state.positions.get((tp.topic, tp.partition))
            if offset is not None:
                self.data.seek(tp, offset)
            elif self.service.start_from == "earliest":
                self.data.seek_to_beginning(tp)
            else:
                self.data.seek_to_end(tp)
        self.versions.forget_champions()
        self.active = True
        self.active_gauge.set(1)

    def _resign(self) -> None:
        """Hand over: checkpoint what was done, stop reading (a standby never polls the
        data consumer; taking over again re-seeks it to the checkpoint)."""
        log.info("lease lost: checkpointing and standing by")
        self.checkpoint()
        self.active = False
        self.active_gauge.set(0)

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: GracefulShutdown) -> None:
        """Evaluate until ``stop`` is requested; checkpoint on the way out."""
        self.configs.catch_up()
        self.subscriber.start()
        # a SIGTERM during this wait ends it: the loop below then never starts
        settled = self.subscriber.wait_until(
            lambda sub: stop.requested or self.versions.settled(sub, self.configs.all()),
            self.service.models_timeout_s,
        )
        if not settled:
            log.warning(
                "models not all loaded after %.0fs; going on", self.service.models_timeout_s
            )
        self.lease.join(self.topics.name("models"))
        while not stop.requested:
            if self.lease.poll(timeout_ms=0 if self.active else 200) and not self.active:
                self._acquire()
            if not self.active:
                continue
            self.step(timeout_ms=200)
        if self.active:
            self.checkpoint()
            self.active = False  # closing the lease hands it over; nothing left to save
            self.active_gauge.set(0)
            log.info("stopped: checkpoint saved")

    def step(self, timeout_ms: int = 200) -> None:
        """Poll once and handle what came: shadow pairs first, then labels by stream."""
        batches = self.data.poll(timeout_ms=timeout_ms)
        self.configs.refresh()
        self.versions.observe_champions(self.subscriber, self.state, self.configs)
        pairs: list[Any] = []
        labels: list[Any] = []
        for tp, records in batches.items():
            (pairs if tp.topic == self.shadow else labels).extend(records)
        for record in pairs:
            try:
                self._pair(record)
            except Exception as exc:  # noqa: BLE001 - one record never stops the evaluator
                self.state.advance(record.topic, record.partition, record.offset)
                self._dead(record, ReasonCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
        by_stream: dict[str, list[Labelled]] = defaultdict(list)
        self._records = {(r.topic, r.partition, r.offset): r for r in labels}
        for record in labels:
            try:
                item = self._labelled(record)
            except Exception as exc:  # noqa: BLE001 - one record never stops the evaluator
                self.state.advance(record.topic, record.partition, record.offset)
                self._dead(record, ReasonCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
                continue
            if item is not None:
                by_stream[item.example.stream].append(item)
        for stream, items in by_stream.items():
            self._score(stream, items)
        self.since_checkpoint += len(pairs) + len(labels)
        j = self.state.join
        for name, value in (
            ("pending", len(j)),
            ("joined", j.joined),
            ("expired", j.expired),
            ("evicted", j.evicted),
        ):
            self.pairs.labels(state=name).set(value)
        due = self.since_checkpoint >= self.service.checkpoint_every or (
            self.since_checkpoint
            and time.monotonic() - self.last_checkpoint >= self.service.checkpoint_interval_s
        )
        if due:
            self.checkpoint()

    # -- records --------------------------------------------------------------------

    def _pair(self, record: Any) -> None:
        self.state.advance(record.topic, record.partition, record.offset)
        try:
            pair = decode(record.value, ShadowPair)
        except CodecError as exc:
            self._dead(record, exc.reason, exc.detail)
            return
        assert isinstance(pair, ShadowPair)  # noqa: S101 - decode's target
        config = self._config(pair.stream)
        problem = (
            (ReasonCode.UNKNOWN_STREAM, f"no config for stream {pair.stream!r}")
            if config is None
            else pair_nonconformance(pair, config.spec)
        )
        if problem is not None:
            self._dead(record, *problem, stream=pair.stream, example_id=pair.example_id)
            return
        self.state.add_pair(pair, now=record.timestamp / 1000.0)

    def _labelled(self, record: Any) -> Labelled | None:
        try:
            example = decode(record.value, LabelledExample)
        except CodecError as exc:
            self.state.advance(record.topic, record.partition, record.offset)
            self._dead(record, exc.reason, exc.detail)
            return None
        assert isinstance(example, LabelledExample)  # noqa: S101 - decode's target
        config = self.configs.current(example.stream, at_least=example.spec_version)
        problem = (
            (
                ReasonCode.UNKNOWN_STREAM,
                f"no config for stream {example.stream!r} on the streams topic",
            )
            if config is None
            else nonconformance(example, config.spec)
        )
        if problem is not None:
            self.state.advance(record.topic, record.partition, record.offset)
            self._dead(record, *problem, stream=example.stream, example_id=example.example_id)
            return None
        return Labelled(
            example=example,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_s=record.timestamp / 1000.0,
        )

    def _config(self, stream: str) -> StreamConfig | None:
        return self.configs.current(stream)

    def _score(self, stream: str, items: list[Labelled]) -> None:
        config = self._config(stream)
        assert config is not None  # noqa: S101 - checked in _labelled
        self.streams.seen(stream, len(items))
        models = self.versions.of(self.subscriber, stream, self.state)
        try:
            out = self.state.handle(items, config=config, models=models, model=stream)
        except Exception as exc:  # noqa: BLE001 - the core isolates records; a last resort
            log.exception("scoring %s failed; the batch is not scored", stream)
            for item in items:
                self.state.advance(item.topic, item.partition, item.offset)
                self._dead_item(item, f"{type(exc).__name__}: {exc}")
            self.streams.child(self.examples, stream, "error").inc(len(items))
            return
        if self.followers is not None:  # after scoring: test, then train
            self.followers.feed(stream, [(i.partition, i.offset, i.example) for i in items])
        for item, error in out.refused:
            self._dead_item(item, error)
        if out.refused:
            self.streams.child(self.examples, stream, "error").inc(len(out.refused))
        self.streams.child(self.examples, stream, "scored").inc(out.scored)
        self.streams.child(self.examples, stream, "duplicate").inc(out.duplicates)
        unscored = len(items) - out.scored - out.duplicates - len(out.refused)
        if unscored:
            self.streams.child(self.examples, stream, "unscored").inc(unscored)
        if out.learned_skips:
            self.streams.child(self.skipped, stream).inc(out.learned_skips)
        for role, served in models.items():
            version = self.streams.gauge(self.served_version, stream, role)
            if served is not None and version is not None:
                version.set(served.version)
        for snap in out.snapshots:
            self._send("metrics", snap)
            for name, value in snap.values.items():
                gauge = self.streams.gauge(self.values, stream, snap.role, name)
                if gauge is not None:
                    gauge.set(value)
        for decision in out.decisions:
            self.carry_out(decision)

    # -- decisions ------------------------------------------------------------------

    def carry_out(self, decision: Decision) -> str:
        """Move the alias the decision calls for (compare-and-set); returns the outcome:
        ``applied``, ``already`` (a replay), ``conflict``, ``frozen``, ``stale`` or ``missing``."""
        outcome = self.mover.carry_out(decision)
        if outcome == "stale":
            self.state.unwatch(decision.stream)
        self.streams.child(self.decisions, decision.stream, decision.kind, outcome).inc()
        log.info(
            "%s %s v%d -> v%d: %s",
            decision.kind,
            decision.stream,
            decision.champion,
            decision.target,
            outcome,
            extra={"model": decision.stream, "evidence": decision.evidence()},
        )
        return outcome

    # -- output ---------------------------------------------------------------------

    def _send(self, suffix: str, event: Any) -> None:
        self.producer.send(self.topics.name(suffix), key=event_key(event), value=encode(event))

    def _dead(
        self,
        record: Any,
        reason: ReasonCode,
        detail: str,
        *,
        stream: str | None = None,
        example_id: str | None = None,
    ) -> None:
        self.dead_letters.send(record, reason, detail, stream=stream, example_id=example_id)

    def _dead_item(self, item: Labelled, error: str) -> None:
        """Dead-letter a labelled example that failed while it was scored."""
        record = self._records.get((item.topic, item.partition, item.offset)) or SimpleNamespace(
            topic=item.topic,
            partition=item.partition,
            offset=item.offset,
            key=item.example.stream.encode(),
            value=encode(item.example),
        )
        self._dead(
            record,
            ReasonCode.HANDLER_ERROR,
            error,
            stream=item.example.stream,
            example_id=item.example.example_id,
        )

    def checkpoint(self) -> None:
        """Flush outputs, then save the state with its positions (signed), then commit them
        to the group for monitoring (the checkpoint is the truth)."""
        started = time.perf_counter()
        self.producer.flush()
        offsets = {f"{t}/{p}": o for (t, p), o in self.state.positions.items()}
        self.registry.save_checkpoint(
            owner=OWNER,
            key=self.service.group_id,
            state=self.state,
            offsets=offsets,
            meta={"watches": sorted(self.state.watches), "pending_pairs": len(self.state.join)},
        )
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self.checkpoints.observe(time.perf_counter() - started)

    def close(self) -> None:
        """Close every client."""
        self.subscriber.stop()
        if self.followers is not None:
            self.followers.stop()
        for consumer in (self.lease, self.data):  # the lease first: a standby takes over
            try:
                consumer.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing a consumer failed", exc_info=True)
        self.producer.flush()
        self.producer.close()
        self.configs.close()
