"""A River classifier wrapper that lives inside model artifacts: any two class values
learned by one binary model.

It is here, in the shared runtime, for the same reason as
:mod:`services.common.river_features`: every process that unpickles a verified artifact
must be able to import it.
"""

from __future__ import annotations

from typing import Any

from river import base


class BinaryLabels(base.Classifier):
    """A binary-only River classifier (``LogisticRegression`` ...) for two class values of
    any type: ``positive`` is learned as ``True``, ``negative`` as ``False``, and
    predictions and probabilities come back as the two values themselves.

    One model instead of ``multiclass.OneVsRestClassifier``'s two: half the work, and the
    same decision (with two classes, one-vs-rest's two models learn complementary
    targets).

    Parameters
    ----------
    classifier
        A binary classifier predicting ``{False, True}``.
    negative, positive
        The stream's two class values (the spec's first and second).

    >>> from river import linear_model
    >>> model = BinaryLabels(linear_model.LogisticRegression(), negative="no", positive="yes")
    >>> for i in range(40):
    ...     model.learn_one({"x": float(i % 2)}, ["no", "yes"][i % 2])
    >>> model.predict_one({"x": 1.0}), sorted(model.predict_proba_one({"x": 0.0}))
    ('yes', ['no', 'yes'])
    """

    def __init__(self, classifier: base.Classifier, negative: Any, positive: Any) -> None:
        if negative == positive:
            raise ValueError(f"the two classes must differ, got {negative!r} twice")
        self.classifier = classifier
        self.negative = negative
        self.positive = positive

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def _supervised(self) -> bool:
        return True

    @classmethod
    def _unit_test_params(cls) -> Any:
        from river import linear_model

        yield {"classifier": linear_model.LogisticRegression(), "negative": 0, "positive": 1}

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        self.classifier.learn_one(x, _same(y, self.positive), **kwargs)

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        proba = self.classifier.predict_proba_one(x, **kwargs)
        if not proba:
            return {}
        return {
            self.negative: float(proba.get(False, 0.0)),
            self.positive: float(proba.get(True, 0.0)),
        }

    def predict_one(self, x: dict[Any, Any], **kwargs: Any) -> Any:
        pred = self.classifier.predict_one(x, **kwargs)
        if pred is None:
            return None
        return self.positive if pred else self.negative


def _same(y: Any, value: Any) -> bool:
    # 1 == True in Python: a bool label is not the class 1, nor an int label the class True
    return bool(y == value) and isinstance(y, bool) == isinstance(value, bool)
