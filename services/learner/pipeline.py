"""Build a River pipeline from a stream's :class:`~schemas.streams.ModelSpec`.

Only the class paths in :data:`ALLOWED` can be named (no ``eval``, no import by name), and
their params are checked against the constructor before anything is built: an unknown
class, an unknown param, a non-JSON value, a value of the wrong type or a param that takes
a River object (``optimizer``, ``loss``, ``engine`` ...) is refused with a
:class:`~services.learner.errors.ModelSpecError` naming it. The last step must be a
classifier for a ``class`` label and a regressor for a ``number`` label; every other step
must be a transformer. ``seed`` comes from ``ModelSpec.seed`` for every estimator that
takes one (setting it in ``params`` is refused: one seed, one place).

Feature values, the rule (:class:`FeatureEncoder`, always the first step):

- only the spec's features are used; anything else is dropped;
- ``None`` (a nullable feature that is missing) is dropped, River's convention for
  "unknown" (one-hot: all zeros; linear models: no contribution);
- numbers become floats (a non-finite number is dropped); bools become ``1.0``/``0.0``;
- category values stay strings and never reach the numeric steps: with category
  features, the spec's transformers see only the number and bool features, and the
  category features are one-hot encoded in parallel (by the spec's
  ``preprocessing.OneHotEncoder`` with its params if it lists one, else a default one),
  the two joined before the last step. ``preprocessing.OneHotEncoder`` applies only to
  category features (without any it is left out). A last step that encodes categories
  itself (``takes_categories``: driftline's selectors) gets their values as strings when
  the spec lists no ``preprocessing.OneHotEncoder``.

A binary-only classifier (``LogisticRegression``, ``Perceptron``, ``PAClassifier``,
``ALMAClassifier``) predicts the stream's own class values: with two classes of any type
(``[0, 1]``, ``["no", "yes"]`` ...) one binary model learns the second as ``True`` inside
:class:`~services.common.river_labels.BinaryLabels` (``False`` and ``True`` need no
wrapper); with more classes it is wrapped in ``multiclass.OneVsRestClassifier``.

>>> from schemas.streams import ModelSpec, Spec
>>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"},
...     {"name": "c", "type": "category", "categories": ["a", "b"]}],
...     "label": {"kind": "class", "classes": ["no", "yes"]}})
>>> model = build_pipeline(ModelSpec(), spec)
>>> for i in range(40):
...     model.learn_one({"x": float(i % 2), "c": "ab"[i % 2]}, ["no", "yes"][i % 2])
>>> model.predict_one({"x": 1.0, "c": "b"}), model.predict_one({"x": 0.0, "c": None})
('yes', 'no')
>>> try:
...     build_pipeline(ModelSpec(pipeline="linear_model.LinearRegression"), spec)
... except ModelSpecError as exc:
...     print(exc)
linear_model.LinearRegression is a regressor; a class label needs a classifier
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any, Final

from river import (
    base,
    compose,
    feature_extraction,
    forest,
    linear_model,
    multiclass,
    naive_bayes,
    neighbors,
    preprocessing,
    tree,
)

from schemas.streams import EstimatorSpec, ModelSpec, Spec
from services.common.river_features import FeatureEncoder
from services.common.river_labels import BinaryLabels
from services.common.selector import SelectClassifier, SelectRegressor
from services.learner.errors import ModelSpecError

__all__ = ["ALLOWED", "FeatureEncoder", "build_pipeline", "check_model_spec"]

ALLOWED: Final[Mapping[str, type]] = {
    # transformers
    "preprocessing.StandardScaler": preprocessing.StandardScaler,
    "preprocessing.MinMaxScaler": preprocessing.MinMaxScaler,
    "preprocessing.MaxAbsScaler": preprocessing.MaxAbsScaler,
    "preprocessing.RobustScaler": preprocessing.RobustScaler,
    "preprocessing.Normalizer": preprocessing.Normalizer,
    "preprocessing.OneHotEncoder": preprocessing.OneHotEncoder,
    "feature_extraction.PolynomialExtender": feature_extraction.PolynomialExtender,
    # classifiers
    "linear_model.LogisticRegression": linear_model.LogisticRegression,
    "linear_model.Perceptron": linear_model.Perceptron,
    "linear_model.PAClassifier": linear_model.PAClassifier,
    "linear_model.ALMAClassifier": linear_model.ALMAClassifier,
    "linear_model.SoftmaxRegression": linear_model.SoftmaxRegression,
    "tree.HoeffdingTreeClassifier": tree.HoeffdingTreeClassifier,
    "tree.HoeffdingAdaptiveTreeClassifier": tree.HoeffdingAdaptiveTreeClassifier,
    "tree.ExtremelyFastDecisionTreeClassifier": tree.ExtremelyFastDecisionTreeClassifier,
    "forest.ARFClassifier": forest.ARFClassifier,
    "forest.AMFClassifier": forest.AMFClassifier,
    "naive_bayes.GaussianNB": naive_bayes.GaussianNB,
    "neighbors.KNNClassifier": neighbors.KNNClassifier,
    # regressors
    "linear_model.LinearRegression": linear_model.LinearRegression,
    "linear_model.PARegressor": linear_model.PARegressor,
    "tree.HoeffdingTreeRegressor": tree.HoeffdingTreeRegressor,
    "tree.HoeffdingAdaptiveTreeRegressor": tree.HoeffdingAdaptiveTreeRegressor,
    "forest.ARFRegressor": forest.ARFRegressor,
    "forest.AMFRegressor": forest.AMFRegressor,
    "neighbors.KNNRegressor": neighbors.KNNRegressor,
    # driftline's own: predict with the member of lowest recent loss (services.common)
    "driftline.SelectClassifier": SelectClassifier,
    "driftline.SelectRegressor": SelectRegressor,
}
"""Class path (as written in a stream config) -> River class. Nothing else can be built."""

_OHE: Final = "preprocessing.OneHotEncoder"
_JSON_TYPES: Final = frozenset(
    {"None", "int", "float", "bool", "str", "list", "dict", "tuple", "set", "typing.Hashable"}
)


def check_model_spec(model: ModelSpec, spec: Spec) -> None:
    """Refuse a model section that cannot be built for ``spec`` (no example is run)."""
    _validated_steps(model, spec)


def build_pipeline(model: ModelSpec, spec: Spec, *, smoke_test: bool = True) -> Any:
    """A fresh River pipeline for ``spec``, as ``model`` describes it.

    With ``smoke_test``, a copy learns two made-up examples and predicts one, so that a
    param of the wrong kind is refused here rather than in the consume loop.
    """
    steps = _validated_steps(model, spec)
    built = [(path, _construct(path, cls, params, model.seed)) for path, cls, params in steps]
    *transformer_steps, (final_path, final) = built
    classes = tuple(spec.label.classes or ())
    if spec.label.kind == "class" and not getattr(final, "_multiclass", True):
        if len(classes) == 2 and classes[0] != classes[1]:
            if not all(isinstance(c, bool) for c in classes):  # bools need no mapping
                final = BinaryLabels(final, negative=classes[0], positive=classes[1])
        else:
            final = multiclass.OneVsRestClassifier(final)

    numbers = tuple(f.name for f in spec.features if f.type == "number")
    bools = tuple(f.name for f in spec.features if f.type == "bool")
    categories = tuple(f.name for f in spec.features if f.type == "category")
    encoder = FeatureEncoder(numbers=numbers, bools=bools, categories=categories)
    numeric = [est for path, est in transformer_steps if path != _OHE]
    if categories:
        ohe = next((est for path, est in transformer_steps if path == _OHE), None)
        cat_branch: Any
        if ohe is None and getattr(final, "takes_categories", False):
            # a selector encodes categories per member itself (trees split on them)
            cat_branch = compose.Select(*categories)
        else:
            cat_branch = compose.Pipeline(
                compose.Discard(*numbers, *bools), ohe or preprocessing.OneHotEncoder()
            )
        if numbers or bools:
            num_branch = compose.Pipeline(compose.Discard(*categories), *numeric)
            pipeline = compose.Pipeline(
                encoder, compose.TransformerUnion(num_branch, cat_branch), final
            )
        else:
            pipeline = compose.Pipeline(encoder, cat_branch, final)
    else:
        pipeline = compose.Pipeline(encoder, *numeric, final)
    if smoke_test:
        _smoke(pipeline, spec, final_path)
    return pipeline


# -- validation -------------------------------------------------------------------------


def _validated_steps(model: ModelSpec, spec: Spec) -> list[tuple[str, type, dict[str, Any]]]:
    steps: list[tuple[str, type, dict[str, Any]]] = []
    for i, step in enumerate(model.pipeline):
        cls = ALLOWED.get(step.estimator)
        if cls is None:
            raise ModelSpecError(
                f"model.pipeline[{i}]: {step.estimator!r} is not an allowed estimator "
                f"(allowed: {', '.join(sorted(ALLOWED))})"
            )
        steps.append((step.estimator, cls, _checked_params(step, cls)))
    *head, (last_path, last_cls, _) = steps
    if sum(1 for path, _, _ in steps if path == _OHE) > 1:
        raise ModelSpecError(f"model.pipeline lists {_OHE} more than once")
    for path, cls, _ in head:
        if not issubclass(cls, base.Transformer):
            raise ModelSpecError(
                f"{path} is not a transformer: only the last step of the pipeline may predict"
            )
    kind = spec.label.kind
    if issubclass(last_cls, base.Classifier):
        if kind != "class":
            raise ModelSpecError(f"{last_path} is a classifier; a number label needs a regressor")
    elif issubclass(last_cls, base.Regressor):
        if kind != "number":
            raise ModelSpecError(f"{last_path} is a regressor; a class label needs a classifier")
    else:
        wanted = "classifier" if kind == "class" else "regressor"
        raise ModelSpecError(f"the last step of model.pipeline must be a {wanted}, not {last_path}")
    return steps


def _checked_params(step: EstimatorSpec, cls: type) -> dict[str, Any]:
    signature = inspect.signature(cls)
    accepted = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    where = step.estimator
    for name, value in step.params.items():
        if name == "seed" and "seed" in accepted:
            raise ModelSpecError(f"{where}: set the seed with model.seed, not params.seed")
        param = accepted.get(name)
        if param is None:
            raise ModelSpecError(
                f"{where}: unknown param {name!r} "
                f"(accepted: {', '.join(n for n in accepted if n != 'seed') or 'none'})"
            )
        if not _is_json(value):
            raise ModelSpecError(f"{where}: param {name!r} must be a JSON value, got {value!r}")
        problem = _type_problem(param, value)
        if problem:
            raise ModelSpecError(f"{where}: param {name!r} {problem}")
    return dict(step.params)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _type_problem(param: inspect.Parameter, value: Any) -> str | None:
    annotation = param.annotation
    default = param.default
    if isinstance(annotation, str) and annotation:
        kinds = {part.strip().split("[")[0] for part in annotation.split("|")}
        json_kinds = kinds & _JSON_TYPES
        if not json_kinds - {"None"}:
            if value is None:
                return None
            return f"takes a River object ({annotation}), which a spec cannot set"
        return None
    if default is inspect.Parameter.empty or default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be a bool, got {value!r}"
    if isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value!r}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if isinstance(default, list | tuple | dict):
        return None
    return f"takes a River object ({type(default).__name__}), which a spec cannot set"


def _construct(path: str, cls: type, params: dict[str, Any], seed: int) -> Any:
    kwargs = dict(params)
    if "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = seed
    try:
        return cls(**kwargs)
    except Exception as exc:  # a constructor that rejects a value: name it
        raise ModelSpecError(f"{path}: cannot be built with {params!r}: {exc}") from exc


def _smoke(pipeline: Any, spec: Spec, final_path: str) -> None:
    trial = copy.deepcopy(pipeline)
    examples: list[dict[str, Any]] = []
    for k in range(2):
        x: dict[str, Any] = {}
        for f in spec.features:
            if f.type == "number":
                lo = f.min if f.min is not None else 0.0
                hi = f.max if f.max is not None else lo + 1.0
                x[f.name] = lo + (hi - lo) * (0.25 + 0.5 * k)
            elif f.type == "bool":
                x[f.name] = bool(k)
            else:
                cats = f.categories or ("a", "b")
                x[f.name] = cats[k % len(cats)]
        examples.append(x)
    if spec.label.kind == "class":
        classes = tuple(spec.label.classes or ())
        labels: list[Any] = [classes[0], classes[1 % len(classes)]]
    else:
        lo = spec.label.min if spec.label.min is not None else 0.0
        labels = [lo, lo + 1.0]
    try:
        for x, y in zip(examples, labels, strict=True):
            trial.learn_one(x, y)
        trial.predict_one(examples[0])
        if spec.label.kind == "class":
            trial.predict_proba_one(examples[1])
    except Exception as exc:  # any failure means the spec's params do not fit
        raise ModelSpecError(
            f"model.pipeline ({final_path} last) fails on a sample example: {exc!r}"
        ) from exc
