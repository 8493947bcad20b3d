"""The demo's replay: the stream produced into Kafka at its pace (with malformed examples
and undecodable messages the validator must dead-letter, and prediction requests once a
model serves), the live view refreshed as it goes, and the wait until everything is
accounted for and learned."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live

from schemas import LabelledExample, Topics
from schemas.predictions import PredictionRequest
from services.common.codec import encode
from services.common.errors import DriftlineError
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.demo import live
from services.demo.checks import LAG_WARNING, LagSample
from services.demo.observer import Observer
from services.demo.stream import BAD_EVERY, DemoStream, is_malformed
from services.demo.supervisor import Supervisor
from services.ingest.producer import encode_raw
from services.registry.client import Registry

GARBAGE_EVERY = 2000  # one undecodable message in this many examples


class ReplayView:
    """Refreshes the live view (and checks the children) at most every ``every_s``."""

    def __init__(
        self,
        sup: Supervisor,
        observer: Observer,
        views: list[live.ServiceView],
        display: Live | None,
        total: int,
        started: float,
        every_s: float = 0.5,
        *,
        learner_url: str | None = None,
        console: Console | None = None,
        metric: str = "accuracy",
    ) -> None:
        self.sup, self.observer, self.views, self.display = sup, observer, views, display
        self.total, self.started, self.every_s = total, started, every_s
        self.learner_url, self.console, self.metric = learner_url, console, metric
        self._last = 0.0
        self.produced = 0
        self.phase = "producing"
        self.samples: list[LagSample] = []
        self._warned = False

    def tick(self, force: bool = False) -> None:
        """Check the children and the observer, sample the lag, redraw (``force``: now)."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        self.sup.check()
        if self.observer.error is not None:
            raise DriftlineError(f"the demo's topic observer failed: {self.observer.error}")
        lag = self._sample()
        if self.display is None:
            return
        for view, child in zip(self.views, self.sup.children, strict=False):
            view.alive = child.alive
        live.refresh(self.views)
        with self.observer.locked() as state:
            self.display.update(
                live.render(
                    state,
                    self.views,
                    produced=self.produced,
                    total=self.total,
                    elapsed_s=now - self.started,
                    phase=self.phase,
                    lag=lag,
                    lag_warning=LAG_WARNING,
                    metric=self.metric,
                )
            )

    def _sample(self) -> int | None:
        """Read the learner's position; warn (once per episode) when it lags the replay."""
        if self.learner_url is None or self.phase != "producing":
            return None
        learned = live.scrape(self.learner_url, ("driftline_learner_examples_total",))
        if learned is None:
            return None
        replayed = self.produced - self.produced // BAD_EVERY  # less the malformed ones
        sample = LagSample(int(time.time() * 1000), replayed, int(learned))
        self.samples.append(sample)
        if sample.lag > LAG_WARNING and not self._warned:
            self._warned = True
            if self.console is not None:
                self.console.print(
                    f"[yellow]warning[/]: the learner lags the replay by {sample.lag:,} "
                    f"examples (more than {LAG_WARNING}); the served model is that far behind"
                )
        elif sample.lag <= LAG_WARNING // 2:
            self._warned = False
        return sample.lag


def malformed(example: LabelledExample, index: int) -> bytes:
    """A broken copy of ``example`` that the validator must dead-letter (not lose)."""
    doc = example.model_dump(mode="json")
    features = doc["features"]
    kind = index // BAD_EVERY % 3
    if kind == 0 and features:
        features.pop(sorted(features)[0])  # missing_feature
    elif kind == 1:
        features["not_in_the_spec"] = 1.0  # unexpected_feature
    else:
        doc["label"] = "not-a-label"  # bad_label
    return json.dumps(doc).encode()


def produce(
    settings: DriftlineSettings,
    source: DemoStream,
    view: ReplayView,
    rate: float,
) -> int:
    """Produce ``source`` to the raw topic at ``rate`` examples/s, with its malformed
    examples, an undecodable message every ``GARBAGE_EVERY`` and, once a model serves, a
    prediction request before each example; returns how many examples were sent."""
    topics = Topics(settings.topic_prefix)
    raw, requests = topics.name("examples.raw"), topics.name("predictions.requests")
    producer = make_producer(settings, client_id="driftline-demo", linger_ms=5)
    stream = source.name
    key = stream.encode()
    sent = 0
    try:
        for index, (example_id, features, label) in enumerate(source.identified()):
            delay = view.started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the replay, not waiting for a result
            now = datetime.now(UTC)
            example = LabelledExample(
                stream=stream,
                example_id=example_id,
                features=features,
                label=label,
                event_time=now,
            )
            with view.observer.locked() as state:
                state.expect(example_id, index)
                serving = bool(state.loads)
            if is_malformed(index):
                producer.send(raw, key=key, value=malformed(example, index))
            else:
                if serving:  # the request comes first; its label follows
                    request = PredictionRequest(
                        stream=stream, example_id=example_id, features=features
                    )
                    producer.send(requests, key=key, value=encode(request))
                producer.send(raw, key=key, value=encode_raw(example))
            if index % GARBAGE_EVERY == GARBAGE_EVERY // 2:
                producer.send(raw, key=key, value=b"\xff\xfe not an event")
                with view.observer.locked() as state:
                    state.garbage_sent += 1
            sent = index + 1
            view.produced = sent
            view.tick()
        producer.flush()
    finally:
        producer.close()
    return sent


def settle(
    settings: DriftlineSettings,
    view: ReplayView,
    ports: dict[str, int],
    timeout_s: float,
) -> float | None:
    """Wait until every example is accounted for, learned, and no training run is open."""
    view.phase = "settling"
    learner_url = f"http://127.0.0.1:{ports['learner']}/metrics"
    registry = Registry.open(settings, relay=False)
    deadline = time.monotonic() + timeout_s
    learned: float | None = None
    try:
        while time.monotonic() < deadline:
            view.tick(force=True)
            learned = live.scrape(learner_url, ("driftline_learner_examples_total",))
            with view.observer.locked() as state:
                accounted = not state.unaccounted() and (
                    state.rejected_unreadable >= state.garbage_sent
                )
                valid = len(state.valid_ids)
                stream = state.stream
            running = [r for r in registry.list_runs(model=stream) if r.status == "running"]
            if accounted and learned is not None and learned >= valid and not running:
                return learned
            time.sleep(0.5)
    finally:
        registry.close()
    return learned
