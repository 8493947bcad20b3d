"""The model section of a stream config -> River pipeline: allow-list, params, seeds."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from schemas.streams import ModelSpec, Spec
from services.common.errors import DriftlineError
from services.common.river_labels import BinaryLabels
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


# -- two classes of any type: one binary model --------------------------------------------


def _two_class_spec(classes: list[Any]) -> Spec:
    return Spec.model_validate(
        {
            "features": [{"name": "x", "type": "number"}],
            "label": {"kind": "class", "classes": classes},
        }
    )


@pytest.mark.parametrize(
    "classes", [[0, 1], [1, 0], ["no", "yes"], [-1, 1], [0, True], [7, "seven"]]
)
def test_two_classes_of_any_type_are_learned_by_one_binary_model(classes: list[Any]) -> None:
    spec = _two_class_spec(classes)
    pipeline = build_pipeline(model("linear_model.LogisticRegression"), spec)
    final = pipeline.steps[next(reversed(pipeline.steps))]
    assert isinstance(final, BinaryLabels)
    assert type(final.classifier).__name__ == "LogisticRegression"  # one model, not OvR
    negative, positive = classes
    for i in range(200):
        pipeline.learn_one({"x": float(i % 2)}, positive if i % 2 else negative)
    for x, want in ((1.0, positive), (0.0, negative)):
        got = pipeline.predict_one({"x": x})
        assert got == want and type(got) is type(want)
        proba = pipeline.predict_proba_one({"x": x})
        assert list(proba) == [negative, positive]
        assert [type(k) for k in proba] == [type(negative), type(positive)]
        assert max(proba, key=proba.get) == want
    restored = pickle.loads(pickle.dumps(pipeline))  # noqa: S301 - our own bytes
    assert restored.predict_one({"x": 1.0}) == positive


def test_the_binary_model_learns_what_a_bool_model_learns() -> None:
    """The wrapper only maps values: weights and probabilities equal a model that was
    given ``label == positive`` as a bool."""
    wrapped = build_pipeline(model("linear_model.LogisticRegression"), _two_class_spec(["a", "b"]))
    plain = build_pipeline(model("linear_model.LogisticRegression"), _two_class_spec([False, True]))
    rows = [({"x": (i * 37 % 101) / 101}, (i * 37 % 101) > 40 + i % 7) for i in range(500)]
    for x, y in rows:
        assert wrapped.predict_proba_one(x) == dict(
            zip("ab", plain.predict_proba_one(x).values(), strict=True)
        )
        wrapped.learn_one(x, "b" if y else "a")
        plain.learn_one(x, y)


def test_bools_need_no_wrapper_and_three_classes_get_one_vs_rest() -> None:
    def final(classes: list[Any]) -> Any:
        built = build_pipeline(model("linear_model.LogisticRegression"), _two_class_spec(classes))
        return built.steps[next(reversed(built.steps))]

    assert type(final([True, False])).__name__ == "LogisticRegression"
    assert type(final([0, 1, 2])).__name__ == "OneVsRestClassifier"
    assert type(final(["a", "b"])) is BinaryLabels


def test_a_bool_label_is_not_the_class_one() -> None:
    """1 == True in Python; the wrapper tells them apart so True is not learned as 1."""
    pipeline = build_pipeline(model("linear_model.LogisticRegression"), _two_class_spec([0, 1]))
    wrapped = pipeline.steps[next(reversed(pipeline.steps))]
    learned: list[Any] = []
    wrapped.classifier.learn_one = lambda x, y, **kw: learned.append(y)
    wrapped.learn_one({"x": 1.0}, 1)
    wrapped.learn_one({"x": 1.0}, True)
    wrapped.learn_one({"x": 1.0}, 0)
    assert learned == [True, False, False]
