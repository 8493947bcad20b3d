"""Online models that pick, example by example, the member with the lowest recent loss.

Every member learns every example; before learning, each member's prediction is scored
(0/1 error for a class label, absolute error for a number) into an exponentially weighted
mean with an effective memory of about ``window`` examples, and predictions come from the
member whose mean is lowest (the first listed on a tie). After a drift the member that
adapts fastest takes over within a few hundred examples; on a stationary stream the one
that learns the concept best does. There is nothing to tune per stream.

Members (fixed; they are what the in-process baselines of ``bench defaults`` run):

- classes: the majority class, ``StandardScaler | LogisticRegression`` (one-vs-rest, so
  any number of classes), ``HoeffdingAdaptiveTreeClassifier`` and
  ``ARFClassifier(n_models=forest_size)``;
- numbers, all behind one ``StandardScaler``: the running mean, ``LinearRegression``,
  ``HoeffdingAdaptiveTreeRegressor`` and ``ARFRegressor(n_models=forest_size)``.

They live here, in ``services/common``, because the learner builds them and serving, the
evaluator and the trainer unpickle them.

>>> model = SelectClassifier(seed=1)
>>> for i in range(400):
...     x = {"a": float(i % 7), "b": float(i % 3)}
...     model.learn_one(x, x["a"] > 3)
>>> model.predict_one({"a": 6.0, "b": 0.0}), model.best in model.members
(True, True)
>>> reg = SelectRegressor(seed=1)
>>> for i in range(400):
...     reg.learn_one({"x": float(i % 10)}, 3.0 * (i % 10))
>>> round(reg.predict_one({"x": 5.0}))
15
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from river import base, compose, dummy, forest, linear_model, multiclass, preprocessing, tree

__all__ = ["SelectClassifier", "SelectRegressor"]


class _Selector:
    """What both selectors share: members, their recent losses, and the choice."""

    members: dict[str, Any]
    losses: dict[str, float]

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.losses = {}
        self.seen = 0  # examples scored
        self.learned = 0  # examples learned

    @property
    def best(self) -> str:
        """The member that predicts now: the lowest recent loss (the first on a tie)."""
        if not self.losses:
            return next(iter(self.members))
        return min(self.members, key=lambda name: self.losses.get(name, math.inf))

    def _score(self, losses: Mapping[str, float]) -> None:
        # a bias-corrected EWMA: the first examples count fully, later ones decay
        self.seen += 1
        rate = max(1.0 / self.window, 1.0 / self.seen)
        for name, loss in losses.items():
            old = self.losses.get(name)
            self.losses[name] = loss if old is None else old + rate * (loss - old)


class SelectClassifier(_Selector, base.Classifier):
    """A classifier that predicts with whichever member has the lowest recent error.

    Parameters
    ----------
    window
        Effective memory, in examples, of each member's error rate.
    forest_size
        Trees of the adaptive random forest member.
    seed
        Seed of the tree and forest members.
    """

    def __init__(self, window: int = 500, forest_size: int = 10, seed: int | None = None) -> None:
        super().__init__(window)
        self.forest_size = forest_size
        self.seed = seed
        self.members = {
            "majority": dummy.PriorClassifier(),
            "logistic": compose.Pipeline(
                preprocessing.StandardScaler(),
                multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
            ),
            "hoeffding_adaptive_tree": tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
            "adaptive_random_forest": forest.ARFClassifier(n_models=forest_size, seed=seed),
        }

    @property
    def _multiclass(self) -> bool:
        return True

    def learn_one(self, x: dict[Hashable, Any], y: Any, **kwargs: Any) -> None:
        """Score every member's prediction of ``x`` against ``y``, then let each learn."""
        if self.learned:
            self._score({name: float(m.predict_one(x) != y) for name, m in self.members.items()})
        for member in self.members.values():
            member.learn_one(x, y)
        self.learned += 1

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[Any, float]:
        """The class probabilities of the member with the lowest recent error."""
        out: dict[Any, float] = self.members[self.best].predict_proba_one(x)
        return out

    def predict_one(self, x: dict[Hashable, Any], **kwargs: Any) -> Any:
        """The class the member with the lowest recent error predicts (None: untrained)."""
        return self.members[self.best].predict_one(x)


class SelectRegressor(_Selector, base.Regressor):
    """A regressor that predicts with whichever member has the lowest recent absolute error.

    Parameters
    ----------
    window
        Effective memory, in examples, of each member's absolute error.
    forest_size
        Trees of the adaptive random forest member.
    seed
        Seed of the tree and forest members.
    """

    def __init__(self, window: int = 500, forest_size: int = 10, seed: int | None = None) -> None:
        super().__init__(window)
        self.forest_size = forest_size
        self.seed = seed
        self.scaler = preprocessing.StandardScaler()
        self.members = {
            "mean": dummy.StatisticRegressor(_mean()),
            "linear": linear_model.LinearRegression(),
            "hoeffding_adaptive_tree": tree.HoeffdingAdaptiveTreeRegressor(seed=seed),
            "adaptive_random_forest": forest.ARFRegressor(n_models=forest_size, seed=seed),
        }

    def learn_one(self, x: dict[Hashable, Any], y: Any, **kwargs: Any) -> None:
        """Score every member's prediction of ``x`` against ``y``, then let each learn."""
        self.scaler.learn_one(x)  # type: ignore[no-untyped-call]
        xs = self.scaler.transform_one(x)  # type: ignore[no-untyped-call]
        target = float(y)
        if self.learned:
            self._score(
                {name: _abs_error(m.predict_one(xs), target) for name, m in self.members.items()}
            )
        for member in self.members.values():
            member.learn_one(xs, target)
        self.learned += 1

    def predict_one(self, x: dict[Hashable, Any], **kwargs: Any) -> float:
        """The prediction of the member with the lowest recent absolute error."""
        xs = self.scaler.transform_one(x)  # type: ignore[no-untyped-call]
        value = self.members[self.best].predict_one(xs)
        return float(value) if value is not None else 0.0


def _mean() -> Any:
    from river import stats

    return stats.Mean()


def _abs_error(prediction: Any, target: float) -> float:
    if prediction is None:
        return abs(target)
    value = abs(float(prediction) - target)
    return value if math.isfinite(value) else math.inf
