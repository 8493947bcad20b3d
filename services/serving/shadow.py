"""Shadow scoring off the response path: a bounded queue and one worker thread.

The response path only enqueues (never blocks; when the queue is full the pair is
dropped and counted); the worker scores the challenger and sends one
:class:`~schemas.ShadowPair` per row through ``send``.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from schemas import ModelAnswer, ShadowPair, derive_id
from services.common.subscriber import LoadedModel
from services.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """Rows the champion answered, to be scored by the challenger."""

    model: str
    rows: Sequence[dict[str, Any]]
    example_ids: Sequence[str]
    request_ids: Sequence[uuid.UUID | None]  # the request events (None: an HTTP request)
    champion: Sequence[ModelAnswer]
    challenger: LoadedModel


def answers(loaded: LoadedModel, rows: Sequence[dict[str, Any]]) -> list[ModelAnswer]:
    """One :class:`ModelAnswer` per row from ``loaded`` (an online model's answers say how
    many examples it had learned)."""
    labels = loaded.predictor.predict_many(rows)
    probs = loaded.predictor.predict_proba_many(rows)
    learned = learned_examples(loaded)
    return [
        ModelAnswer(
            model=loaded.model,
            version=loaded.version,
            prediction=y,
            probabilities=p,
            learned_examples=learned,
        )
        for y, p in zip(labels, probs, strict=True)
    ]


def learned_examples(loaded: LoadedModel) -> int | None:
    """How many examples of its stream an online model had learned when it last answered
    in this thread: its follower's count, or its snapshot's (None: a batch model)."""
    if loaded.meta.kind != "online":
        return None
    following = getattr(loaded.predictor, "following", None)
    if callable(following):
        return int(following()["learned_examples"])
    return loaded.meta.lineage.example_count


class ShadowScorer:
    """Scores challengers in a daemon thread and sends the pairs."""

    def __init__(
        self, send: Callable[[ShadowPair], None], metrics: ServingMetrics, *, size: int
    ) -> None:
        self._send = send
        self._metrics = metrics
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)

    def start(self) -> ShadowScorer:
        """Start the worker."""
        self._thread.start()
        return self

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job without blocking; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            self._metrics.shadow_pairs.labels(model=job.model, outcome="dropped").inc(len(job.rows))
            return False

    def stop(self, timeout_s: float) -> None:
        """Finish queued jobs for at most ``timeout_s``, then stop."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("shadow queue still full at shutdown: pending pairs are dropped")
            return
        self._thread.join(timeout_s)

    def pending(self) -> int:
        """Jobs waiting."""
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._score(job)
            except Exception:  # noqa: BLE001 - shadowing must never take serving down
                self._metrics.shadow_pairs.labels(model=job.model, outcome="error").inc(
                    len(job.rows)
                )
                log.exception("shadow scoring of %s failed", job.model)

    def _score(self, job: ShadowJob) -> None:
        theirs = answers(job.challenger, job.rows)
        for example_id, request_id, champ, chall in zip(
            job.example_ids, job.request_ids, job.champion, theirs, strict=True
        ):
            pair = ShadowPair(
                event_id=derive_id(request_id, "shadow") if request_id else uuid.uuid4(),
                stream=job.model,
                example_id=example_id,
                request_event_id=request_id or uuid.uuid4(),
                champion=champ,
                challenger=chall,
            )
            self._send(pair)
        self._metrics.shadow_pairs.labels(model=job.model, outcome="sent").inc(len(job.rows))
