"""One stream's online learner: pipeline + prequential metrics + drift monitor.

:class:`StreamLearner` is the whole per-stream state the learner service keeps: it is
picklable (the edge checkpoints it, signed) and, restored, continues exactly as an
uninterrupted run. It does no I/O and does not de-duplicate example ids (the edge does).

>>> from schemas.streams import StreamConfig
>>> cfg = StreamConfig.model_validate({"stream": "s", "spec": {
...     "features": [{"name": "x", "type": "number"}],
...     "label": {"kind": "class", "classes": [False, True]}},
...     "policy": {"rolling_window": 10, "drift": {"data_drift": False}}})
>>> learner = StreamLearner(cfg, metrics_every=50)
>>> outcomes = [learner.process({"x": float(i % 2)}, i % 2 == 1) for i in range(100)]
>>> learner.examples_seen, outcomes[-1].correct, outcomes[-1].snapshot.values["rolling_accuracy"]
(100, True, 1.0)
>>> learner.predictor().predict_one({"x": 1.0})
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.streams import StreamConfig
from services.common.predictor import Predictor, clone
from services.learner.drift import Alarm, DriftMonitor
from services.learner.pipeline import build_pipeline
from services.learner.prequential import Prequential, Snapshot

__all__ = ["Outcome", "StreamLearner"]


@dataclass(frozen=True)
class Outcome:
    """What one labelled example did to the stream's learner."""

    example_count: int
    """Examples seen so far, this one included."""
    prediction: Any
    """The prediction made before learning from the example (None: no model yet)."""
    error: float
    """0/1 for classification, the absolute error for regression."""
    snapshot: Snapshot | None
    """Metric values, every ``metrics_every`` examples; else None."""
    alarms: tuple[Alarm, ...]
    """Drift alarms to publish (already debounced)."""
    version_due: bool
    """True every ``policy.online_version_every`` examples, and at the learner's
    ``first_version_at`` when sooner: time to register the model."""
    retrain_due: bool = False
    """True when ``policy.retrain.every`` examples have passed since the last drift alarm
    or scheduled retrain: time to request one."""

    @property
    def correct(self) -> bool:
        """True when a classification was right (regression: an exact prediction)."""
        return self.error == 0.0


class StreamLearner:
    """Online learning, prequential metrics, drift detection and the retrain schedule of
    one stream.

    Parameters
    ----------
    config
        The stream's config (spec, model, policy).
    metrics_every
        Examples between two metric snapshots (default: ``policy.rolling_window``).
    first_version_at
        When below ``policy.online_version_every``, the example count at which the first
        online version is due too (0: none before K), so that a new stream is served
        within seconds; the learner service sets it (``DRIFTLINE_LEARNER_FIRST_VERSION_AT``).
    """

    last_trigger: int = 0
    """The example count of the last drift alarm or scheduled retrain (a class default, so
    a learner checkpointed before the schedule existed restores)."""

    first_version_at: int = 0
    """(A class default, so a learner checkpointed before the setting restores: past its
    first versions, it registers on multiples of K only.)"""

    def __init__(
        self,
        config: StreamConfig,
        *,
        metrics_every: int | None = None,
        first_version_at: int = 0,
    ) -> None:
        self.config = config
        if first_version_at < 0:
            raise ValueError(f"first_version_at must be >= 0, got {first_version_at}")
        self.first_version_at = first_version_at
        self.spec_sha256 = config.spec_sha256()
        self.model = build_pipeline(config.model, config.spec)
        self.prequential = Prequential(
            self.model,
            task=config.spec.label.kind,
            window=config.policy.rolling_window,
            classes=len(config.spec.label.classes or ()),
        )
        self.monitor = DriftMonitor(
            config.policy.drift, config.spec.features, seed=config.model.seed
        )
        self.metrics_every = metrics_every or config.policy.rolling_window
        if self.metrics_every < 1:
            raise ValueError(f"metrics_every must be >= 1, got {self.metrics_every}")
        self.last_trigger = 0

    @property
    def examples_seen(self) -> int:
        """Labelled examples learned so far."""
        return self.prequential.example_count

    def process(self, features: Mapping[str, Any], label: Any) -> Outcome:
        """Predict, score, learn, then check for drift; the inputs are left untouched."""
        x = dict(features)
        step = self.prequential.step(x, label)
        alarms = self.monitor.update(x, step.error)
        n = self.examples_seen
        every = self.config.policy.retrain.every
        if any(a.retrain for a in alarms):
            self.last_trigger = n
        retrain_due = every is not None and n - self.last_trigger >= every
        if retrain_due:
            self.last_trigger = n
        snapshot = self.prequential.snapshot() if n % self.metrics_every == 0 else None
        return Outcome(
            example_count=n,
            prediction=step.prediction,
            error=step.error,
            snapshot=snapshot,
            alarms=tuple(alarms),
            version_due=self._version_due(n),
            retrain_due=retrain_due,
        )

    def _version_due(self, n: int) -> bool:
        """Every ``online_version_every`` examples, and once at ``first_version_at`` when
        that comes sooner: a new stream is served after a few examples, not K."""
        every = self.config.policy.online_version_every
        return n % every == 0 or 0 < n == self.first_version_at < every

    def predict(self, features: Mapping[str, Any]) -> Any:
        """The current model's prediction for ``features`` (nothing is learned)."""
        return self.prequential.predict(dict(features))[0]

    def snapshot(self) -> Snapshot:
        """Metric values now."""
        return self.prequential.snapshot()

    def predictor(self) -> Predictor:
        """A frozen copy of the current model, wrapped for an artifact."""
        return Predictor.river(
            clone(self.model), spec=self.config.spec, spec_sha256=self.spec_sha256
        )
