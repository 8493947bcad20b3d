"""Serving's Kafka path: a consumer group reads ``predictions.requests`` once the model
subscriber has caught up, answers each request with the champion (one ``predict_many``
per stream and batch) and sends a :class:`~schemas.Prediction` stamped with the version;
the offsets are committed after the producer has flushed. An unusable request goes to
``events.dead`` with a reason code; the other requests of its batch are answered.
(:mod:`services.serving.app` describes the whole replica.)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from schemas import Prediction, PredictionRequest, ReasonCode, derive_id
from services.common.batches import batch_or_each
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_backend import open_consumer
from services.serving.protocol import BadRequest, check_rows
from services.serving.ranges import out_of_spec
from services.serving.shadow import ShadowJob, answers

if TYPE_CHECKING:
    from services.serving.app import Serving

log = logging.getLogger("services.serving")


class RequestLoop:
    """The Kafka path in its own thread: requests in, predictions out, offsets committed
    after the producer flushed."""

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        service = serving.service
        self.topic = serving.topics.name("predictions.requests")
        self.consumer = open_consumer(
            serving.settings,
            group_id=service.group_id,
            client_id=f"driftline-serving-{serving.replica_id}",
            max_poll_records=service.max_poll_records,
            session_timeout_ms=service.session_timeout_ms,
            heartbeat_interval_ms=max(1000, service.session_timeout_ms // 10),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="requests", daemon=True)
        self.handled = 0

    def start(self) -> None:
        """Start the thread (it subscribes once the subscriber has caught up)."""
        self._thread.start()

    def signal(self) -> None:
        """Ask the loop to stop after the batch in hand (returns at once)."""
        self._stop.set()

    def stop(self, timeout_s: float) -> None:
        """Finish the batch in hand, commit, leave the group."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("the Kafka request loop did not stop within %.1fs", timeout_s)

    def _run(self) -> None:
        subscriber = self.serving.subscriber
        try:
            while not self._stop.is_set() and not subscriber.caught_up():
                self._stop.wait(0.1)
            self.consumer.subscribe([self.topic])
            while not self._stop.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                records = [r for rs in batches.values() for r in rs]
                if not records:
                    continue
                try:
                    self.handle(records)
                except Exception:  # noqa: BLE001 - handle letters each record; a last resort
                    log.exception("a batch of %d request(s) failed; going on", len(records))
                self.serving.producer.flush()
                self.consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs})
                self.handled += len(records)
        except Exception:  # noqa: BLE001 - logged; /healthz stays up for HTTP
            log.exception("the Kafka request loop stopped on an error")
        finally:
            try:
                self.consumer.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                log.debug("closing the request consumer failed", exc_info=True)

    def handle(self, records: list[Any]) -> None:
        """Answer a batch of request records (grouped by stream, one predict per group)."""
        with self.serving.in_flight:
            self._handle(records)

    def _handle(self, records: list[Any]) -> None:
        by_stream: dict[str, list[tuple[Any, PredictionRequest]]] = {}
        for record in records:
            try:
                request = decode(record.value, PredictionRequest)
            except CodecError as exc:
                self._dead(record, exc.reason, exc.detail)
                continue
            assert isinstance(request, PredictionRequest)  # noqa: S101 - decode's target
            by_stream.setdefault(request.stream, []).append((record, request))
        for stream, items in by_stream.items():
            try:
                self._answer(stream, items)
            except Exception as exc:  # noqa: BLE001 - one stream's batch never stops the loop
                log.exception("answering %d request(s) of %s failed", len(items), stream)
                for record, request in items:
                    detail = f"{type(exc).__name__}: {exc}"
                    self._dead(record, ReasonCode.HANDLER_ERROR, detail, request=request)

    def _answer(self, stream: str, items: list[tuple[Any, PredictionRequest]]) -> None:
        serving = self.serving
        subscriber = serving.subscriber
        metrics = serving.metrics
        started = time.perf_counter()
        loaded = subscriber.get(stream, serving.followed[0])
        if loaded is None:
            known = bool(subscriber.versions(stream)) or bool(subscriber.aliases(stream))
            reason = ReasonCode.HANDLER_ERROR if known else ReasonCode.UNKNOWN_STREAM
            detail = (
                f"no version of {stream!r} is loaded for {serving.followed[0]!r}"
                if known
                else f"no model {stream!r} is served by this group ({serving.service.group_id})"
            )
            for record, _ in items:
                self._dead(record, reason, detail, stream=stream)
            metrics.requests.labels(
                model=stream if known else "unknown", version="none", outcome="unavailable"
            ).inc(len(items))
            return
        good: list[tuple[Any, PredictionRequest]] = []
        spec = serving.spec(stream)
        for record, request in items:
            try:
                check_rows([request.features], loaded.predictor.features, serving.nullable(stream))
                outside = out_of_spec([request.features], spec)
                for feature, n in outside.counts.items():
                    metrics.out_of_spec.labels(model=stream, feature=feature).inc(n)
                if outside and serving.service.strict_spec:
                    raise BadRequest(
                        f"outside the stream's spec: {outside.describe()}", ReasonCode.OUT_OF_RANGE
                    )
            except BadRequest as exc:
                self._dead(record, exc.reason, str(exc).replace("row 0: ", ""), request=request)
                metrics.requests.labels(
                    model=stream, version=str(loaded.version), outcome="invalid"
                ).inc()
                continue
            good.append((record, request))
        if not good:
            return
        rows = [dict(request.features) for _, request in good]
        results, errors = batch_or_each(lambda batch: answers(loaded, batch), rows)
        if errors:  # a model failing on valid rows: only those rows are refused
            log.warning("%s v%d failed on %d row(s)", stream, loaded.version, len(errors))
            for i, error in errors.items():
                record, request = good[i]
                detail = f"{type(error).__name__}: {error}"
                self._dead(record, ReasonCode.HANDLER_ERROR, detail, request=request)
            metrics.requests.labels(model=stream, version=str(loaded.version), outcome="error").inc(
                len(errors)
            )
            kept = [i for i in range(len(good)) if i not in errors]
            good, rows = [good[i] for i in kept], [rows[i] for i in kept]
            if not good:
                return
        mine = [answer for answer in results if answer is not None]
        elapsed = time.perf_counter() - started
        for (_, request), answer in zip(good, mine, strict=True):
            serving._send(
                Prediction(
                    event_id=derive_id(request.event_id, "prediction"),
                    stream=stream,
                    example_id=request.example_id,
                    request_event_id=request.event_id,
                    answer=answer,
                    latency_ms=elapsed * 1000,
                )
            )
        metrics.requests.labels(model=stream, version=str(loaded.version), outcome="ok").inc(
            len(good)
        )
        metrics.rows.labels(model=stream, path="kafka").inc(len(good))
        metrics.latency.labels(model=stream, path="kafka").observe(elapsed)
        if serving.shadow is not None:
            challenger = subscriber.get(stream, serving.followed[1])
            if challenger is not None and challenger.version != loaded.version:
                serving.shadow.submit(
                    ShadowJob(
                        model=stream,
                        rows=rows,
                        example_ids=[request.example_id for _, request in good],
                        request_ids=[request.event_id for _, request in good],
                        champion=mine,
                        challenger=challenger,
                    )
                )

    def _dead(
        self,
        record: Any,
        reason: ReasonCode,
        detail: str,
        *,
        request: PredictionRequest | None = None,
        stream: str | None = None,
    ) -> None:
        self.serving.dead_letters.send(
            record,
            reason,
            detail,
            what="unusable prediction request",
            stream=request.stream if request is not None else stream,
            example_id=request.example_id if request is not None else None,
            source_event_id=str(request.event_id) if request is not None else None,
        )
