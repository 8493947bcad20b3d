"""Online models that pick, example by example, the member with the lowest recent loss.

Before learning an example, each working member's prediction is scored (0/1 error for a
class label, absolute error for a number) into an exponentially weighted mean with an
effective memory of about ``window`` examples, and predictions come from the member
whose mean is lowest (the first listed on a tie). There is nothing to tune per stream.

The cost stays bounded however many members, classes or features (every copy of the
model, in the learner, serving and the evaluator, pays it on every example): after
``window`` examples only the ``keep`` best members work on every example; the others,
and any member more than ``margin`` worse than the best, *rest*: they predict, are scored
and learn on one example in ``rest_every``, so a resting member that becomes the best
still takes over. When the best member's recent loss rises clearly above its lowest
since the last change (by ``2 * margin``), a change is assumed and every member works
fully again for ``window`` examples: after a drift the one that adapts fastest shows it.
From the change on, the losses before it weigh as ``prior`` examples only (the member
that fits the new concept takes over within a few ``prior`` examples, not ``window``),
and, once the start's ``window`` is over, after ``probe`` examples a member more than
``2 * margin`` worse than the best rests again, so the wake-up costs all members for
``probe`` examples and the close ones for the rest (on 10 classes x 24 features, LED:
about 1.4 ms an example after a drift instead of 2.2, in-process).

Members (fixed; each is a model the in-process baselines of ``bench defaults`` run):

- classes: the majority class, ``StandardScaler | LogisticRegression`` (one-vs-rest, so
  any number of classes), ``HoeffdingAdaptiveTreeClassifier``,
  ``DriftRetrainingClassifier(HoeffdingTreeClassifier, DDM)`` (a fresh tree after each
  drift it detects) and ``ARFClassifier(n_models=forest_size)``;
- numbers, behind one ``StandardScaler`` (categories one-hot encoded): the running mean,
  ``LinearRegression``, ``HoeffdingTreeRegressor``, ``HoeffdingAdaptiveTreeRegressor`` and
  ``ARFRegressor(n_models=forest_size)``.

Category values arrive as strings (``takes_categories``): the trees split on them, the
linear members one-hot encode them.

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

from river import base, compose, drift, dummy, forest, linear_model, multiclass, preprocessing, tree

__all__ = ["SelectClassifier", "SelectRegressor"]


class _Selector:
    """What both selectors share: members, their recent losses, resting, and the choice."""

    members: dict[str, Any]
    losses: dict[str, float]
    takes_categories = True
    """Category values reach the selector as strings: trees split on them, linear members
    one-hot encode them (see ``services.learner.pipeline``)."""
    # class defaults, so that a selector pickled before resting existed restores
    rest_every: int = 1
    patience: int = 0
    margin: float = math.inf
    keep: int = 1_000_000
    resting: frozenset[str] = frozenset()
    own: float = 0.0  # recent mean loss of the selector's own answers
    own_square: float = 0.0  # ... and of their squares
    floor: float = math.inf  # the lowest ``own`` since the last change
    woken: int = 0  # examples scored at the last change
    prior: int = 0  # since a change, the losses before it weigh as this many examples
    probe: int = 0  # examples after a change from which clearly worse members rest again

    def __init__(
        self, window: int, rest_every: int, margin: float, keep: int, prior: int, probe: int
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if rest_every < 1:
            raise ValueError(f"rest_every must be >= 1, got {rest_every}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if prior < 0 or probe < 0:
            raise ValueError(f"prior and probe must be >= 0, got {prior} and {probe}")
        self.window = window
        self.rest_every = rest_every
        self.patience = window
        self.margin = margin
        self.keep = keep
        self.prior = prior
        self.probe = probe
        self.losses = {}
        self.resting = frozenset()
        self.seen = 0  # examples scored
        self.learned = 0  # examples learned

    @property
    def best(self) -> str:
        """The member that predicts now: the working one of lowest recent loss (the first
        on a tie)."""
        if not self.losses:
            return next(iter(self.members))
        working = [name for name in self.members if name not in self.resting]
        return min(working or self.members, key=lambda name: self.losses.get(name, math.inf))

    def _working(self) -> list[str]:
        """The members that predict, are scored and learn on the next example: the active
        ones always, the resting ones on one example in ``rest_every``."""
        if self.learned % self.rest_every == 0:
            return list(self.members)
        return [name for name in self.members if name not in self.resting]

    def _score(self, losses: Mapping[str, float]) -> None:
        # a bias-corrected EWMA: the first examples count fully, later ones decay (a
        # resting member, scored less often, remembers more of the stream; it predicts
        # only once it works again, so its slower estimate costs no accuracy)
        self.seen += 1
        rate = max(1.0 / self.window, 1.0 / self.seen)
        if self.woken and self.prior:
            # since a change, the losses before it weigh as ``prior`` examples: the member
            # that adapts best to the new concept leads within a few ``prior`` examples
            rate = max(rate, 1.0 / (self.seen - self.woken + self.prior))
        served = losses[self.best]  # the loss of the member that answered
        for name, loss in losses.items():
            old = self.losses.get(name)
            self.losses[name] = loss if old is None else old + rate * (loss - old)
        if self.seen == 1:
            self.own, self.own_square = served, served * served
        else:
            self.own += rate * (served - self.own)
            self.own_square += rate * (served * served - self.own_square)
        # the noise of the selector's own mean loss: its spread, shrunk by the EWMA
        noise = math.sqrt(max(0.0, self.own_square - self.own**2) * rate / (2.0 - rate))
        if self.own > self.floor + max(2.0 * self.margin * self.floor, 4.0 * noise) + 1e-12:
            # its answers got clearly worse than they were: a change; every member works
            # fully again for ``patience`` examples, so that the one that adapts best shows it
            self.resting = frozenset()
            self.woken = self.seen
            self.floor = self.own
        self.floor = min(self.floor, self.own)
        since = self.seen - self.woken
        if since >= self.patience:
            self._rest()
        elif self.probe and self.woken >= self.patience and since >= self.probe:
            # after a change (past the start's window: the members have learned), a member
            # clearly worse than the best after ``probe`` examples rests again (it is
            # scored one example in ``rest_every``, so it can come back)
            self._rest(keep=len(self.members), margin=2.0 * self.margin)

    def _rest(self, keep: int | None = None, margin: float | None = None) -> None:
        """Only the ``keep`` members of lowest recent loss work fully: a member outside
        them, or whose loss exceeds the best's by more than ``margin`` (relative), rests;
        a resting one works again once it is among them and within half that margin (the
        selector's ``keep`` and ``margin`` unless given)."""
        keep = self.keep if keep is None else keep
        margin = self.margin if margin is None else margin
        low = min(self.losses.values())
        ranked = sorted(self.losses, key=lambda name: self.losses[name])
        resting = set(self.resting)
        for rank, name in enumerate(ranked):
            loss = self.losses[name]
            if rank >= keep or loss > low * (1.0 + margin) + 1e-12:
                resting.add(name)
            elif loss <= low * (1.0 + margin / 2.0):
                resting.discard(name)
        self.resting = frozenset(resting)


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
    rest_every
        A resting member (recent error more than ``margin`` above the best's, after
        ``window`` examples) predicts and learns one example in ``rest_every``.
    margin
        How much worse than the best (relative) a member's recent error must be to rest.
    keep
        At most this many members (those of lowest recent error) work on every example.
    prior
        After a change, the errors before it weigh as this many examples (0: ``window``).
    probe
        After a change (past the first ``window`` examples), members whose recent error is
        more than ``2 * margin`` above the best's after this many examples rest again (0:
        all work for ``window`` examples).
    """

    def __init__(
        self,
        window: int = 500,
        forest_size: int = 10,
        seed: int | None = None,
        rest_every: int = 10,
        margin: float = 0.1,
        keep: int = 2,
        prior: int = 50,
        probe: int = 100,
    ) -> None:
        super().__init__(window, rest_every, margin, keep, prior, probe)
        self.forest_size = forest_size
        self.seed = seed
        self.members = {
            "majority": dummy.PriorClassifier(),
            "logistic": compose.Pipeline(
                _linear_view(),
                multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
            ),
            "hoeffding_adaptive_tree": tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
            "drift_retrained_tree": drift.DriftRetrainingClassifier(
                model=tree.HoeffdingTreeClassifier(), drift_detector=drift.binary.DDM()
            ),
            "adaptive_random_forest": forest.ARFClassifier(n_models=forest_size, seed=seed),
        }

    @property
    def _multiclass(self) -> bool:
        return True

    def learn_one(self, x: dict[Hashable, Any], y: Any, **kwargs: Any) -> None:
        """Score the working members' predictions of ``x`` against ``y``, then let them
        learn it."""
        working = self._working()
        if self.learned:
            self._score({name: float(self.members[name].predict_one(x) != y) for name in working})
        for name in working:
            self.members[name].learn_one(x, y)
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
    rest_every
        A resting member (recent error more than ``margin`` above the best's, after
        ``window`` examples) predicts and learns one example in ``rest_every``.
    margin
        How much worse than the best (relative) a member's recent error must be to rest.
    keep
        At most this many members (those of lowest recent error) work on every example.
    prior
        After a change, the errors before it weigh as this many examples (0: ``window``).
    probe
        After a change (past the first ``window`` examples), members whose recent error is
        more than ``2 * margin`` above the best's after this many examples rest again (0:
        all work for ``window`` examples).
    """

    def __init__(
        self,
        window: int = 500,
        forest_size: int = 10,
        seed: int | None = None,
        rest_every: int = 10,
        margin: float = 0.1,
        keep: int = 2,
        prior: int = 50,
        probe: int = 100,
    ) -> None:
        super().__init__(window, rest_every, margin, keep, prior, probe)
        self.forest_size = forest_size
        self.seed = seed
        self.view = _linear_view()  # leaf models of the trees need numbers too
        self.members = {
            "mean": dummy.StatisticRegressor(_mean()),
            "linear": linear_model.LinearRegression(),
            "hoeffding_tree": tree.HoeffdingTreeRegressor(),
            "hoeffding_adaptive_tree": tree.HoeffdingAdaptiveTreeRegressor(seed=seed),
            "adaptive_random_forest": forest.ARFRegressor(n_models=forest_size, seed=seed),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "view" not in state:  # pickled before categories reached it: numbers only
            state["view"] = state.pop("scaler")
        self.__dict__.update(state)

    def learn_one(self, x: dict[Hashable, Any], y: Any, **kwargs: Any) -> None:
        """Score the working members' predictions of ``x`` against ``y``, then let them
        learn it."""
        self.view.learn_one(x)
        xs = self.view.transform_one(x)
        target = float(y)
        working = self._working()
        if self.learned:
            self._score(
                {name: _abs_error(self.members[name].predict_one(xs), target) for name in working}
            )
        for name in working:
            self.members[name].learn_one(xs, target)
        self.learned += 1

    def predict_one(self, x: dict[Hashable, Any], **kwargs: Any) -> float:
        """The prediction of the member with the lowest recent absolute error."""
        value = self.members[self.best].predict_one(self.view.transform_one(x))
        return float(value) if value is not None else 0.0


def _linear_view() -> Any:
    """Standardised numbers next to one-hot encoded category strings."""
    numbers = compose.SelectType(float, int) | preprocessing.StandardScaler()
    return compose.TransformerUnion(
        numbers, compose.SelectType(str) | preprocessing.OneHotEncoder()
    )


def _mean() -> Any:
    from river import stats

    return stats.Mean()


def _abs_error(prediction: Any, target: float) -> float:
    if prediction is None:
        return abs(target)
    value = abs(float(prediction) - target)
    return value if math.isfinite(value) else math.inf
