"""The predictor wrapper every artifact holds: one interface over River and scikit-learn.

>>> from river import linear_model
>>> from schemas.streams import Spec
>>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
...                             "label": {"kind": "class", "classes": [False, True]}})
>>> model = linear_model.LogisticRegression()
>>> for i in range(50):
...     _ = model.learn_one({"x": float(i % 2)}, i % 2 == 1)
>>> p = Predictor.river(model, spec=spec, spec_sha256="0" * 64)
>>> p.predict_one({"x": 1.0}), p.predict_many([{"x": 0.0}, {"x": 1.0}])
(True, [False, True])
>>> p.compatibility_problems(spec)
[]
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from schemas.streams import FeatureSpec, Spec

_T = TypeVar("_T")

Flavor = Literal["river", "sklearn"]


@dataclass(frozen=True)
class FeatureRef:
    """A feature a model uses: its name and type."""

    name: str
    type: str


class Vectorizer:
    """Dicts of features -> float rows, in a fixed column order taken from a spec.

    Numbers as floats (missing: NaN), bools as 0/1 (missing: NaN), categories one-hot over
    the spec's categories (an unknown or missing category: all zeros).

    >>> spec = Spec.model_validate({"features": [
    ...     {"name": "x", "type": "number"}, {"name": "c", "type": "category",
    ...     "categories": ["a", "b"]}, {"name": "f", "type": "bool"}],
    ...     "label": {"kind": "number"}})
    >>> v = Vectorizer(spec.features)
    >>> v.columns
    ['x', 'c=a', 'c=b', 'f']
    >>> v.row({"x": 2, "c": "b", "f": True})
    [2.0, 0.0, 1.0, 1.0]
    """

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        self.features = tuple(features)
        self.columns: list[str] = []
        for f in self.features:
            if f.type == "category":
                self.columns += [f"{f.name}={c}" for c in f.categories or ()]
            else:
                self.columns.append(f.name)

    def row(self, x: Mapping[str, Any]) -> list[float]:
        """One example as a row of floats."""
        out: list[float] = []
        for f in self.features:
            value = x.get(f.name)
            if f.type == "category":
                out += [1.0 if value == c else 0.0 for c in f.categories or ()]
            elif value is None:
                out.append(math.nan)
            else:
                out.append(float(value))
        return out

    def matrix(self, xs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Many examples as a 2-D float array."""
        return np.asarray([self.row(x) for x in xs], dtype=float).reshape(
            len(xs), len(self.columns)
        )


class Predictor:
    """A trained model with what is needed to use it safely.

    Build with :meth:`river` or :meth:`sklearn`; pickle it inside a signed artifact.
    """

    follow: Any = None
    """An online snapshot's :class:`~services.common.online_follow.FollowPoint`: where its
    followers resume learning (None: a batch model, or a snapshot from before followers)."""

    def __init__(
        self,
        *,
        flavor: Flavor,
        model: Any,
        spec: Spec,
        spec_sha256: str,
        algorithm: str,
        vectorizer: Vectorizer | None = None,
    ) -> None:
        self.flavor = flavor
        self.model = model
        self.spec_sha256 = spec_sha256
        self.algorithm = algorithm
        self.features = tuple(FeatureRef(f.name, f.type) for f in spec.features)
        self.task: Literal["class", "number"] = spec.label.kind
        self.classes: tuple[Any, ...] = tuple(spec.label.classes or ())
        self.vectorizer = vectorizer

    @classmethod
    def river(cls, model: Any, *, spec: Spec, spec_sha256: str) -> Predictor:
        """Wrap a River estimator or pipeline (``predict_one``/``predict_proba_one``)."""
        return cls(
            flavor="river", model=model, spec=spec, spec_sha256=spec_sha256, algorithm=_name(model)
        )

    @classmethod
    def sklearn(cls, model: Any, *, spec: Spec, spec_sha256: str) -> Predictor:
        """Wrap a fitted scikit-learn estimator that takes :class:`Vectorizer` rows."""
        return cls(
            flavor="sklearn",
            model=model,
            spec=spec,
            spec_sha256=spec_sha256,
            algorithm=_name(model),
            vectorizer=Vectorizer(spec.features),
        )

    # -- predictions ------------------------------------------------------------------

    def predict_one(self, x: Mapping[str, Any]) -> Any:
        """The predicted label of one example."""
        return self.predict_many([x])[0]

    def predict_many(self, xs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The predicted labels of many examples."""
        if not xs:
            return []
        if self.flavor == "river":
            return [self._river_label(self.model.predict_one(dict(x))) for x in xs]
        assert self.vectorizer is not None  # noqa: S101 - set for every sklearn predictor
        return [_plain(v) for v in self.model.predict(self.vectorizer.matrix(xs))]

    def predict_proba_one(self, x: Mapping[str, Any]) -> dict[str, float] | None:
        """Class probabilities of one example (None for regression)."""
        return self.predict_proba_many([x])[0]

    def predict_proba_many(self, xs: Sequence[Mapping[str, Any]]) -> list[dict[str, float] | None]:
        """Class probabilities of many examples, keyed by the class as a string."""
        if self.task != "class":
            return [None for _ in xs]
        if self.flavor == "river":
            return [
                {str(k): float(v) for k, v in self.model.predict_proba_one(dict(x)).items()}
                for x in xs
            ]
        assert self.vectorizer is not None  # noqa: S101
        if not hasattr(self.model, "predict_proba"):
            return [None for _ in xs]
        probs = self.model.predict_proba(self.vectorizer.matrix(xs))
        labels = [str(_plain(c)) for c in self.model.classes_]
        return [dict(zip(labels, map(float, row), strict=True)) for row in probs]

    def _river_label(self, value: Any) -> Any:
        if value is None:  # a model that has not learned yet
            return self.classes[0] if self.classes else 0.0
        return _plain(value)

    # -- safety -----------------------------------------------------------------------

    def compatibility_problems(self, spec: Spec) -> list[str]:
        """Why this model cannot serve examples of ``spec`` (empty when it can).

        Compatible means: every feature the model uses exists there with the same type.
        """
        problems = []
        for ref in self.features:
            feature = spec.feature(ref.name)
            if feature is None:
                problems.append(f"feature {ref.name!r} is not in the spec")
            elif feature.type != ref.type:
                problems.append(f"feature {ref.name!r} is {feature.type}, model uses {ref.type}")
        return problems


def clone(model: _T) -> _T:
    """An independent copy of ``model``: a pickle round trip of bytes made right here.

    ``copy.deepcopy`` walks a River tree in Python, one object at a time, and took about
    1.4 s for the demo's Hoeffding adaptive tree; pickle does the same in C in a few tens
    of milliseconds. Only bytes this process has just written are unpickled.

    >>> original = {"weights": [1.0, 2.0]}
    >>> copied = clone(original)
    >>> copied == original, copied["weights"] is original["weights"]
    (True, False)
    """
    return pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return]  # noqa: S301 - our own bytes


def _name(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if isinstance(steps, Mapping):  # a River pipeline
        return " | ".join(type(s).__name__ for s in steps.values())
    if isinstance(steps, list):  # a scikit-learn pipeline
        return " | ".join(type(s).__name__ for _, s in steps)
    return type(model).__name__


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so labels JSON-encode and compare as users expect."""
    return value.item() if isinstance(value, np.generic) else value
