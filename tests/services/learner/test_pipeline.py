"""The model section of a stream config -> River pipeline: allow-list, params, seeds."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from schemas.streams import ModelSpec, Spec
from services.common.errors import DriftlineError
from services.learner.errors import ModelSpecError
from services.learner.pipeline import ALLOWED, build_pipeline

CLASS_SPEC = Spec.model_validate(
    {
        "features": [
            {"name": "x", "type": "number", "min": 0, "max": 1},
            {"name": "y", "type": "number", "nullable": True},
            {"name": "c", "type": "category", "categories": ["a", "b", "c"], "nullable": True},
            {"name": "f", "type": "bool"},
        ],
        "label": {"kind": "class", "classes": ["no", "yes"]},
    }
)
NUMBER_SPEC = Spec.model_validate(
    {"features": [{"name": "x", "type": "number"}], "label": {"kind": "number"}}
)


def model(pipeline: str | list[dict[str, Any]], seed: int = 42) -> ModelSpec:
    return ModelSpec.model_validate({"pipeline": pipeline, "seed": seed})


def examples(n: int) -> list[tuple[dict[str, Any], str]]:
    out = []
    for i in range(n):
        x = {
            "x": (i * 7 % 10) / 10,
            "y": None if i % 3 == 0 else i % 5,
            "c": "abc"[i % 3],
            "f": i % 2 == 0,
        }
        out.append((x, "yes" if x["x"] > 0.45 or x["c"] == "a" else "no"))
    return out


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_every_allowed_estimator_builds_where_it_fits(path: str) -> None:
    cls = ALLOWED[path]
    from river import base

    if issubclass(cls, base.Classifier):
        pipe = build_pipeline(model(path), CLASS_SPEC)
        for x, y in examples(30):
            pipe.learn_one(x, y)
        assert pipe.predict_one(examples(1)[0][0]) in {"no", "yes"}
    elif issubclass(cls, base.Regressor):
        pipe = build_pipeline(model(path), NUMBER_SPEC)
        for i in range(30):
            pipe.learn_one({"x": float(i)}, 2.0 * i)
        assert isinstance(pipe.predict_one({"x": 3.0}), float | int)
    else:
        pipe = build_pipeline(model(f"{path} | naive_bayes.GaussianNB"), CLASS_SPEC)
        for x, y in examples(30):
            pipe.learn_one(x, y)
    pickle.loads(pickle.dumps(pipe))  # noqa: S301 - our own bytes


@pytest.mark.parametrize(
    ("pipeline", "named"),
    [
        ("os.system", "'os.system' is not an allowed estimator"),
        ("linear_model.Lasso", "'linear_model.Lasso' is not an allowed estimator"),
        ("compose.FuncTransformer | linear_model.LogisticRegression", "compose.FuncTransformer"),
    ],
)
def test_unknown_classes_are_refused_by_name(pipeline: str, named: str) -> None:
    with pytest.raises(ModelSpecError, match=named.replace(".", r"\.")):
        build_pipeline(model(pipeline), CLASS_SPEC)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"l3": 0.1}, "unknown param 'l3'"),
        ({"l2": "lots"}, "param 'l2' must be a number"),
        ({"optimizer": "sgd"}, "param 'optimizer' takes a River object"),
        ({"intercept_lr": -1e400}, "param 'intercept_lr' must be a JSON value"),
    ],
)
def test_bad_params_are_refused_by_name(params: dict[str, Any], named: str) -> None:
    spec = [{"estimator": "linear_model.LogisticRegression", "params": params}]
    with pytest.raises(ModelSpecError, match=named):
        build_pipeline(model(spec), CLASS_SPEC)


def test_seed_comes_from_the_model_section_only() -> None:
    spec = [{"estimator": "forest.ARFClassifier", "params": {"seed": 3}}]
    with pytest.raises(ModelSpecError, match="set the seed with model.seed"):
        build_pipeline(model(spec), CLASS_SPEC)
    pipe = build_pipeline(model("forest.ARFClassifier", seed=7), CLASS_SPEC)
    assert list(pipe.steps.values())[-1].seed == 7


def test_params_reach_the_estimator() -> None:
    spec = [{"estimator": "tree.HoeffdingTreeClassifier", "params": {"grace_period": 50}}]
    pipe = build_pipeline(model(spec), CLASS_SPEC)
    assert list(pipe.steps.values())[-1].grace_period == 50


def test_a_value_the_constructor_rejects_is_refused() -> None:
    spec = [{"estimator": "forest.ARFClassifier", "params": {"max_features": "lots"}}]
    with pytest.raises(ModelSpecError, match="ARFClassifier last.*Invalid max_features"):
        build_pipeline(model(spec), CLASS_SPEC)


def test_regressor_for_a_class_label_and_classifier_for_a_number_are_refused() -> None:
    with pytest.raises(
        ModelSpecError, match="linear_model.LinearRegression is a regressor; a class"
    ):
        build_pipeline(model("linear_model.LinearRegression"), CLASS_SPEC)
    with pytest.raises(ModelSpecError, match="tree.HoeffdingTreeClassifier is a classifier; a num"):
        build_pipeline(model("tree.HoeffdingTreeClassifier"), NUMBER_SPEC)
    with pytest.raises(ModelSpecError, match="must be a classifier, not preprocessing"):
        build_pipeline(model("preprocessing.StandardScaler"), CLASS_SPEC)
    with pytest.raises(ModelSpecError, match="naive_bayes.GaussianNB is not a transformer"):
        build_pipeline(model("naive_bayes.GaussianNB | naive_bayes.GaussianNB"), CLASS_SPEC)
    assert issubclass(ModelSpecError, DriftlineError)


def test_categories_bools_and_missing_values_are_handled() -> None:
    pipe = build_pipeline(
        model("preprocessing.StandardScaler | linear_model.LogisticRegression"), CLASS_SPEC
    )
    data = examples(600)
    for x, y in data:
        pipe.learn_one(x, y)
    right = sum(pipe.predict_one(x) == y for x, y in data[-200:])
    assert right >= 180
    x, _ = data[0]
    untouched = dict(x)
    pipe.learn_one(x, "yes")
    assert x == untouched
    assert pipe.predict_one({"x": 0.9, "y": None, "c": None, "f": None}) in {"no", "yes"}
    assert pipe.predict_one({"x": 0.9, "c": "never seen"}) in {"no", "yes"}


def test_a_listed_one_hot_encoder_only_sees_categories() -> None:
    pipe = build_pipeline(
        model(
            "preprocessing.OneHotEncoder | preprocessing.StandardScaler | naive_bayes.GaussianNB"
        ),
        CLASS_SPEC,
    )
    for x, y in examples(50):
        pipe.learn_one(x, y)
    features = pipe.transform_one({"x": 0.5, "y": 1.0, "c": "b", "f": True})
    assert {"c_b", "x", "y", "f"} <= set(features)
    assert not any(k.startswith(("x_", "y_")) for k in features)


def test_seeds_make_runs_reproducible() -> None:
    def run(seed: int) -> list[Any]:
        pipe = build_pipeline(model("forest.ARFClassifier", seed=seed), CLASS_SPEC)
        out = []
        for x, y in examples(400):
            out.append(pipe.predict_proba_one(x))
            pipe.learn_one(x, y)
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)
