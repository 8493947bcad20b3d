"""Keeping a served online model as fresh as the learner: the Kafka edge.

:class:`OnlineFollower` reads the stream's partition of ``examples.valid`` from an online
snapshot's :class:`~services.common.online_follow.FollowPoint` on, in its own thread, and
teaches a :class:`~services.common.online_follow.TwinModel` what the learner learns:
predictions never wait for learning.
:class:`~services.common.online_followers.Followers` is what a service plugs into its
:class:`~services.common.subscriber.ModelSubscriber` (``prepare=followers.prepare``):
each online snapshot a followed alias loads is caught up to the partition's end before it
is swapped in (the previous model answers meanwhile), then keeps learning; a newer
snapshot replaces it the same way (a resync), so lineage stays auditable: the model that
answers says which version it started from (``base_version``) and how many examples of
its stream it has learned (``learned_examples``, the learner's count).

An evaluator, which must score each record before the model learns it, uses unthreaded
followers (``Followers(threaded=False)``) and feeds them the records it has scored
(:meth:`Followers.feed`): a gap (records it did not score) is read from the topic.

A follower reads what arrived at most every ``POLL_EVERY_S`` and learns it between
requests (:class:`InFlight`: serving counts the requests it is answering). A newer
snapshot of the state a follower learns becomes its base without a catch-up
(:meth:`OnlineFollower.rebase`), so a follower costs its replica the learner's
``learn_one`` twice per example of its stream (once per copy; once while catching up, and
once in the evaluator, which predicts in the thread that learns), two copies of the model
in memory (one in the evaluator), and one consumer on one partition, however often the
learner publishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from schemas import LabelledExample
from services.common.backoff import Backoff
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_client import assign_at, make_consumer
from services.common.metrics import Metrics
from services.common.online_follow import (
    ADMIT,
    PAUSE,
    SKIP,
    FollowingPredictor,
    FollowPoint,
    FollowRules,
    TwinModel,
)
from services.common.predictor import Predictor, clone
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)

__all__ = ["FollowMetrics", "InFlight", "OnlineFollower"]

SWAP_EVERY = 32
"""Examples learned on the standby before it is made live (at most; a poll that brings
fewer swaps at its end)."""

WAIT_BELOW = 64
"""A follower with fewer examples than this to learn waits for requests in flight
before each example; a longer backlog is learned at once (freshness first)."""

WAIT_MAX_S = 0.05
"""The longest a follower waits for the requests in flight before one example."""

POLL_EVERY_S = 0.05
"""A following thread reads the topic at most this often: what arrived meanwhile is
learned and swapped in as one batch (a poll and a swap cost the same for one record as
for fifty), at the price of at most this much added staleness."""

YIELD_EVERY_S = 0.002
"""Without a gate: learning yields the GIL (``sleep(0)``) at most this often."""


class InFlight:
    """Requests being answered in this process: followers learn between them.

    A server wraps each request in ``with in_flight:``; a follower calls :meth:`wait`
    before learning one example, which returns at once when nothing is in flight and
    otherwise blocks (releasing the GIL) until the last request is answered or
    ``timeout_s`` passes. Learning thus runs in the gaps between requests, and a
    prediction contends with at most the one ``learn_one`` it arrived during.

    >>> gate = InFlight()
    >>> with gate:
    ...     gate.busy, gate.wait(0.0)
    (True, False)
    >>> gate.busy, gate.wait(0.0)
    (False, True)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._idle = threading.Event()
        self._idle.set()

    def __enter__(self) -> InFlight:
        with self._lock:
            self._count += 1
            self._idle.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    @property
    def busy(self) -> bool:
        """A request is in flight now."""
        return not self._idle.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (True) or ``timeout_s`` passed (False)."""
        return self._idle.wait(timeout_s)


class FollowMetrics:
    """A service's follower metrics (``<service>_online_*``, by model and alias)."""

    def __init__(self, metrics: Metrics, service: str) -> None:
        m = metrics
        labels = ["model", "alias"]
        self.learned = m.gauge(
            f"{service}_online_learned_examples",
            "Examples of its stream the served online model has learned (the learner's "
            "count; compare with driftline_learner_stream_examples).",
            labels,
        )
        self.base = m.gauge(
            f"{service}_online_base_version", "The snapshot the online model started from.", labels
        )
        self.behind = m.gauge(
            f"{service}_online_behind_records",
            "Records of the stream's examples.valid partition not yet read by the follower.",
            labels,
        )
        self.delay = m.histogram(
            f"{service}_online_follow_delay_seconds",
            "From a record's timestamp on examples.valid to the served model having learned it.",
            labels,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.paused = m.gauge(
            f"{service}_online_paused",
            "1 while the follower waits for a snapshot of a newer stream config.",
            labels,
        )
        self.resyncs = m.counter(
            f"{service}_online_resyncs_total", "Online snapshots followed (loads).", labels
        )


class OnlineFollower:
    """Learns one online snapshot on from ``examples.valid``, in its own thread.

    Parameters
    ----------
    settings
        Broker settings (the consumer takes no group: it is assigned one partition).
    snapshot
        The verified snapshot's predictor (its ``follow`` point says where to start); its
        model is copied, never changed.
    version
        The snapshot's version (``base_version``).
    """

    def __init__(
        self,
        settings: DriftlineSettings,
        snapshot: Predictor,
        *,
        version: int,
        client_id: str = "driftline-follower",
        on_swap: Callable[[OnlineFollower, float | None], None] | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        point = snapshot.follow
        if not isinstance(point, FollowPoint):
            raise ValueError("the snapshot has no follow point: it cannot be followed")
        self.point = point
        self.version = version
        self.rules = FollowRules(point)
        self.twin = TwinModel(clone(snapshot.model), examples=point.example_count)  # 1 copy
        self.predictor = FollowingPredictor(snapshot, self.twin, base_version=version)
        self.predictors = {version: self.predictor}
        """One predictor per snapshot version this follower stands for (its base)."""
        self.paused = False
        self.direct = True  # one copy, learned at once: until start() publishes it
        self.behind = 0
        self.on_swap = on_swap
        self.in_flight = in_flight
        self._highwater = point.next_offset
        self._yielded = time.monotonic()
        self._consumer = make_consumer(
            settings, group_id=None, client_id=client_id, max_poll_records=SWAP_EVERY * 8
        )
        try:
            self._tp = assign_at(self._consumer, point.topic, point.partition, point.next_offset)
        except BaseException:
            self._consumer.close()
            raise
        self._stop = threading.Event()
        self._busy = threading.Lock()  # feed / stop (never taken by predictions)
        self._thread: threading.Thread | None = None
        self._newest_ts: float | None = None  # the newest record timestamp queued (s)

    # -- life cycle -----------------------------------------------------------------

    def catch_up(self, timeout_s: float = 60.0, *, until: int | None = None) -> bool:
        """Learn up to the partition's end as it is now, or up to the offset ``until``
        (excluded), or until paused; False when ``timeout_s`` passed first."""
        end = self._consumer.end_offsets([self._tp])[self._tp] if until is None else until
        deadline = time.monotonic() + timeout_s
        self._highwater = max(self._highwater, end)
        while self.rules.position < end and not self.paused:
            if time.monotonic() > deadline or self._stop.is_set():
                return False
            self.step(timeout_ms=200, until=until)
        return True

    @property
    def stopped(self) -> bool:
        """:meth:`stop` was called (a superseded catch-up gives up)."""
        return self._stop.is_set()

    def rebase(self, version: int, snapshot: Predictor) -> FollowingPredictor | None:
        """A predictor for a newer snapshot ``version`` of the same learner state, on
        this follower's model, without loading it: when the follower has passed the
        snapshot's offset having learned exactly the snapshot's example count there
        (same learner, config, stream and partition), its model at that point was the
        snapshot (``learn_one`` is deterministic) and it has learned on since. None when
        that cannot be shown (the caller loads the snapshot and catches it up)."""
        point = snapshot.follow
        if not isinstance(point, FollowPoint) or not self.rules.passed(point):
            return None
        predictor = self.predictors.get(version)
        if predictor is None:
            predictor = FollowingPredictor(snapshot, self.twin, base_version=version)
            self.predictors[version] = predictor
        return predictor

    def feed(self, offset: int, example: LabelledExample) -> None:
        """Learn one record the caller has read (and scored) itself, in offset order: a
        record already passed is ignored, a gap before it is read from the topic first.
        Call :meth:`settle` after a batch. For a caller that must score each record
        before the model learns it (the evaluator); not with :meth:`start`."""
        with self._busy:
            if self._stop.is_set() or self.paused or offset < self.rules.position:
                return
            if offset > self.rules.position:
                self.catch_up(until=offset)
                if self.paused or offset != self.rules.position:
                    return
            self._consider(offset, example, None)
            self._consumer.seek(self._tp, self.rules.position)

    def settle(self) -> None:
        """After a batch of :meth:`feed`: report (metrics)."""
        with self._busy:
            if self._newest_ts is not None:
                self._learned()

    def start(self) -> OnlineFollower:
        """Keep learning in a daemon thread (on two copies from now on: predictions may
        come from any thread); returns ``self``."""
        self.twin.fork()
        self.direct = False
        self._thread = threading.Thread(
            target=self._run, name=f"follow-{self.point.stream}", daemon=True
        )
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask a catch-up running in another thread to give up (it closes the consumer)."""
        self._stop.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop learning (the model keeps answering as it is) and close the consumer."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if self._thread is None:
            with self._busy:
                self._close()

    def _close(self) -> None:
        try:
            self._consumer.close()
        except Exception:  # noqa: BLE001 - best effort
            log.debug("closing a follower's consumer failed", exc_info=True)

    def _run(self) -> None:
        backoff = Backoff(max_s=10.0)
        try:
            polled = 0.0
            while not self._stop.is_set():
                if self.paused:
                    self._stop.wait(0.5)
                    continue
                if self._stop.wait(max(0.0, polled + POLL_EVERY_S - time.monotonic())):
                    break
                polled = time.monotonic()
                try:
                    self.step(timeout_ms=200)
                except Exception as exc:  # noqa: BLE001 - a broker error: retry, rate-limited
                    delay = backoff.failed()
                    if backoff.should_log():
                        log.warning("following %s failed: %s", self.point.stream, exc)
                    self._stop.wait(delay)
                else:
                    backoff.succeeded()
        finally:
            self._close()

    # -- one poll -------------------------------------------------------------------

    def step(self, timeout_ms: int = 200, *, until: int | None = None) -> int:
        """Read what arrived (before ``until``), learn it on the standby and swap (at
        least every ``SWAP_EVERY`` examples); returns the records read."""
        if not self.direct:
            self.twin.settle(before=self._pause)  # if a reader held it at the last swap
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        records = [r for rs in batches.values() for r in rs]
        highwater = self._consumer.highwater(self._tp)
        if highwater is not None:
            self._highwater = max(self._highwater, highwater)
        queued = 0
        for record in records:
            if until is not None and record.offset >= until:
                self._consumer.seek(self._tp, until)  # read again by whoever needs it
                break
            if record.offset < self.rules.position:
                continue
            try:
                example = decode(record.value, LabelledExample)
            except CodecError:
                self.rules.undecodable(record.offset)
                continue
            assert isinstance(example, LabelledExample)  # noqa: S101 - decode's target
            verdict = self._consider(record.offset, example, record.timestamp)
            if verdict == PAUSE:
                break
            if verdict == ADMIT and not self.direct:
                queued += 1
                if queued >= SWAP_EVERY:
                    self._swap()
                    queued = 0
        if queued:
            self._swap()
        elif self.direct and self._newest_ts is not None:
            self._learned()
        self.behind = max(0, self._highwater - self.rules.position)
        return len(records)

    def _consider(self, offset: int, example: LabelledExample, timestamp: int | None) -> str:
        verdict = self.rules.admit(offset, example)
        if verdict == PAUSE:
            self.paused = True
            log.info(
                "following %s paused at offset %d: spec version %s is newer than the "
                "snapshot's %d; waiting for the next snapshot",
                self.point.stream,
                offset,
                example.spec_version,
                self.point.config_version,
            )
            return verdict
        elif verdict == ADMIT:
            self._newest_ts = timestamp / 1000 if timestamp else time.time()
            if not self.direct:
                self.twin.add(dict(example.features), example.label, example)
            else:
                self._pause()
                refused = self.twin.learn(dict(example.features), example.label)
                if refused is not None:
                    self.rules.refused(example)
                    return SKIP
        return verdict

    def _pause(self) -> None:
        """Before learning one example: let requests go first while the backlog is
        short (wait for those in flight), else only yield the GIL now and then."""
        in_flight = self.in_flight
        backlog = self._highwater - self.rules.position + self.twin.pending
        if in_flight is not None and backlog < WAIT_BELOW:
            in_flight.wait(WAIT_MAX_S)
            return
        now = time.monotonic()
        if now - self._yielded >= YIELD_EVERY_S:
            time.sleep(0)
            self._yielded = now

    def _swap(self) -> None:
        # A reader still on the standby (rare, for a few ms): the examples wait for the
        # next swap; nothing waits here.
        while not self.twin.swap(on_error=self._refused, before=self._pause):
            if not self.twin.pending or self._stop.wait(0.001):
                return
        self._learned()
        self.twin.settle(before=self._pause)  # the old live copy, while nothing arrives

    def _learned(self) -> None:
        delay = time.time() - self._newest_ts if self._newest_ts is not None else None
        self._newest_ts = None
        if self.on_swap is not None:
            self.on_swap(self, delay)

    def _refused(self, example: Any, exc: Exception) -> None:
        self.rules.refused(example)
        log.debug("the followed model refused example %s: %s", example.example_id, exc)
