"""Prequential (test-then-train) evaluation of one stream's online model.

For each example: predict, score, then learn. Metrics are kept cumulatively and over a
rolling window of ``policy.rolling_window`` examples (``river.utils.Rolling``):

- classification: ``accuracy``, ``f1_macro``, ``log_loss`` (River's ``LogLoss`` with two
  classes, its ``CrossEntropy`` with more: the mean of ``-ln p(true class)`` either way);
- regression: ``mae``, ``rmse``, ``r2``;

and each also as ``rolling_<name>``. The scoring is River's own
(``river.evaluate.progressive_val_score``): a metric is not updated when the model has
no prediction yet (``None`` or empty probabilities), so the cumulative values are
identical to it on the same data and pipeline.

>>> from river import datasets, linear_model, preprocessing
>>> model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> pq = Prequential(model, task="class", window=100)
>>> for x, y in datasets.Phishing().take(300):
...     _ = pq.step(x, y)
>>> snap = pq.snapshot()
>>> snap.example_count, round(snap.values["accuracy"], 4), sorted(snap.values)[:3]
(300, 0.8467, ['accuracy', 'f1_macro', 'log_loss'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from river import base, metrics, utils

from services.common.river_labels import BinaryLabels

__all__ = ["METRICS", "Prequential", "Snapshot", "Step"]

METRICS: dict[str, tuple[str, ...]] = {
    "class": ("accuracy", "f1_macro", "log_loss"),
    "number": ("mae", "rmse", "r2"),
}
"""Metric names per label kind; each also exists as ``rolling_<name>``."""

_CLASSES: dict[str, Any] = {
    "accuracy": metrics.Accuracy,
    "f1_macro": metrics.MacroF1,
    "log_loss": metrics.LogLoss,
    "mae": metrics.MAE,
    "rmse": metrics.RMSE,
    "r2": metrics.R2,
}


@dataclass(frozen=True)
class Snapshot:
    """Metric values at one point: what a ``MetricSnapshot`` event carries.

    Non-finite values (a metric with nothing scored yet) are left out.
    """

    values: dict[str, float]
    example_count: int
    window: int


@dataclass(frozen=True)
class Step:
    """What one test-then-train step found: the prediction and its error."""

    prediction: Any
    probabilities: dict[Any, float] | None
    error: float
    """0/1 for classification (1: wrong or no prediction), the absolute error otherwise."""


class Prequential:
    """Test-then-train evaluation around a River model (the model is learned in place).

    Parameters
    ----------
    model
        A River classifier or regressor (usually a pipeline).
    task
        ``"class"`` or ``"number"``: the stream's label kind.
    window
        Examples in the rolling window.
    classes
        How many classes a ``class`` label has (more than two: multi-class log loss).

    Examples
    --------
    A 3-class stream's log loss is the cross-entropy, not the binary loss:

    >>> from river import datasets, tree
    >>> pq = Prequential(tree.HoeffdingTreeClassifier(), task="class", window=50, classes=7)
    >>> for x, y in datasets.ImageSegments().take(300):
    ...     _ = pq.step(x, y)
    >>> 0 < pq.snapshot().values["log_loss"] < 5
    True
    """

    def __init__(
        self,
        model: Any,
        *,
        task: Literal["class", "number"],
        window: int,
        classes: int = 2,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.model = model
        self.task: Literal["class", "number"] = task
        self.window = window
        self.example_count = 0
        kinds = dict(_CLASSES)
        if classes > 2:
            kinds["log_loss"] = metrics.CrossEntropy
        self.cumulative = {name: kinds[name]() for name in METRICS[task]}
        self.rolling = {
            name: utils.Rolling(kinds[name], window_size=window) for name in METRICS[task]
        }
        final = model.steps[next(reversed(model.steps))] if hasattr(model, "steps") else model
        if isinstance(final, BinaryLabels):  # maps the inner model's argmax one to one
            final = final.classifier
        # When the last step keeps River's default predict_one (the argmax of
        # predict_proba_one), one call gives both; else predict_one is asked separately.
        self._argmax = type(final).predict_one is base.Classifier.predict_one

    def predict(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """The model's prediction (and class probabilities) for ``x``, without learning."""
        if self.task == "number":
            return self.model.predict_one(x), None
        proba = self.model.predict_proba_one(x)
        if self._argmax:
            label = max(proba, key=proba.get) if proba else None
        else:
            label = self.model.predict_one(x)
        return label, proba

    def step(self, x: dict[str, Any], y: Any) -> Step:
        """Predict ``x``, score the prediction against ``y``, then learn ``(x, y)``.

        What can fail on a value (the prediction, the error) runs before anything is
        changed, and the metrics and the count change only once ``learn_one`` returned: an
        exception leaves them as they were. River has no transactional ``learn_one``, so a
        model that raises half-way may keep that half (a scaler that counted the row when
        the regressor after it refused it); the edge checks each example against its spec
        first, so values River refuses do not get this far.
        """
        prediction, proba = self.predict(x)
        if self.task == "class":
            error = 0.0 if prediction is not None and prediction == y else 1.0
        elif prediction is not None:
            error = abs(float(y) - float(prediction))
        else:
            error = abs(float(y))
        self.model.learn_one(x, y)
        if self.task == "class":
            if prediction is not None:
                self._update("accuracy", y, prediction)
                self._update("f1_macro", y, prediction)
            if proba:
                self._update("log_loss", y, proba)
        elif prediction is not None:
            for name in METRICS["number"]:
                self._update(name, y, prediction)
        self.example_count += 1
        return Step(prediction=prediction, probabilities=proba, error=error)

    def _update(self, name: str, y: Any, y_pred: Any) -> None:
        self.cumulative[name].update(y, y_pred)
        self.rolling[name].update(y, y_pred)

    def snapshot(self) -> Snapshot:
        """Cumulative and rolling metric values now."""
        values: dict[str, float] = {}
        for name in METRICS[self.task]:
            pairs: tuple[tuple[str, Any], ...] = (
                (name, self.cumulative[name]),
                (f"rolling_{name}", self.rolling[name]),
            )
            for key, metric in pairs:
                value = float(metric.get())
                if math.isfinite(value):
                    values[key] = value
        return Snapshot(values=values, example_count=self.example_count, window=self.window)
