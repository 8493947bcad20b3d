"""The selecting online models: they predict with the member of lowest recent loss, switch
when another member becomes better, pickle, and build from a stream config."""

from __future__ import annotations

import pickle
import random
from typing import Any

from schemas.streams import ModelSpec, Spec
from services.common.predictor import Predictor
from services.common.selector import SelectClassifier, SelectRegressor
from services.learner.pipeline import build_pipeline


def test_the_member_with_the_lowest_recent_error_predicts() -> None:
    model = SelectClassifier(window=100, forest_size=3, seed=1)
    rng = random.Random(0)
    for _ in range(600):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        model.learn_one(x, x["a"] + x["b"] > 0)  # a linear concept
    assert model.losses[model.best] == min(model.losses.values())
    assert model.losses["logistic"] < 0.2 * model.losses["majority"]
    x = {"a": 0.9, "b": 0.5}
    best = model.members[model.best]
    assert model.predict_one(x) == best.predict_one(x) is True
    assert model.predict_proba_one(x) == best.predict_proba_one(x)


def test_after_a_change_the_member_that_fits_the_new_concept_takes_over() -> None:
    model = SelectClassifier(window=100, forest_size=3, seed=1)
    rng = random.Random(1)
    for _ in range(500):
        x = {"a": rng.uniform(-1, 1)}
        model.learn_one(x, "yes")  # one class only: the majority is perfect
    before = model.best
    for _ in range(1500):
        x = {"a": rng.uniform(-1, 1)}
        model.learn_one(x, "yes" if x["a"] > 0 else "no")
    assert model.losses["majority"] > 0.3
    assert model.best != "majority" and before in model.members


def test_the_regressor_selects_by_absolute_error_and_pickles() -> None:
    model = SelectRegressor(window=100, forest_size=3, seed=1)
    rng = random.Random(2)
    for _ in range(500):
        x = {"x": rng.uniform(0, 10)}
        model.learn_one(x, 4.0 * x["x"] - 3.0)
    assert model.losses[model.best] == min(model.losses.values())
    assert model.losses[model.best] < 0.1 * model.losses["mean"]
    restored = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes
    assert restored.predict_one({"x": 5.0}) == model.predict_one({"x": 5.0})
    assert abs(model.predict_one({"x": 5.0}) - 17.0) < 1.0


class _Counting:
    """A member wrapper that counts the examples its member learns."""

    def __init__(self, member: Any) -> None:
        self.member = member
        self.learned = 0

    def predict_one(self, x: dict[str, Any]) -> Any:
        return self.member.predict_one(x)

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.learned += 1
        self.member.learn_one(x, y)


def test_only_the_best_members_learn_every_example_the_others_rest() -> None:
    model = SelectClassifier(window=100, forest_size=3, seed=1, rest_every=10, keep=2)
    model.members = {name: _Counting(m) for name, m in model.members.items()}
    rng = random.Random(4)
    for _ in range(2000):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        model.learn_one(x, x["a"] + x["b"] > 0)  # stationary: no change after the start
    learned = {name: m.learned for name, m in model.members.items()}
    assert len(model.resting) >= len(model.members) - 2
    assert model.best not in model.resting
    assert learned["majority"] < 400  # resting after its first 100: one example in ten
    assert max(learned.values()) > 1500
    assert sum(learned.values()) < 0.6 * 2000 * len(learned)


def test_a_change_wakes_every_member_and_the_one_that_adapts_takes_over() -> None:
    model = SelectClassifier(window=100, forest_size=3, seed=1, keep=1)
    rng = random.Random(5)
    for _ in range(1000):
        model.learn_one({"a": rng.uniform(-1, 1)}, "yes")  # the majority is perfect
    assert model.best == "majority" and "logistic" in model.resting
    woken_before = model.woken
    for _ in range(300):
        x = {"a": rng.uniform(-1, 1)}
        model.learn_one(x, "yes" if x["a"] > 0 else "no")
    assert model.woken > woken_before  # the change was seen
    assert model.best != "majority"
    assert model.losses[model.best] < 0.5 * model.losses["majority"]


def _woken_then(model: SelectClassifier, after: int) -> SelectClassifier:
    """``model`` after a one-class stretch, a change to a linear concept, and ``after``
    examples from the moment it saw the change."""
    rng = random.Random(7)
    for _ in range(1000):
        model.learn_one({"a": rng.uniform(-1, 1)}, "yes")  # the majority is perfect
    woken = model.woken
    left = after
    for _ in range(5000):
        x = {"a": rng.uniform(-1, 1)}
        model.learn_one(x, "yes" if x["a"] > 0 else "no")
        if model.woken > woken:
            left -= 1
            if left == 0:
                return model
    raise AssertionError("the change was not seen")


def test_after_a_change_a_clearly_worse_member_rests_again_after_probe_examples() -> None:
    probed = _woken_then(SelectClassifier(window=400, forest_size=3, seed=1, probe=50), 80)
    assert probed.seen - probed.woken < probed.patience  # still in the wake-up
    assert "majority" in probed.resting  # wrong on half the new concept: rests already
    assert probed.best not in probed.resting
    assert probed.losses[probed.best] < 0.5 * probed.losses["majority"]
    unprobed = _woken_then(SelectClassifier(window=400, forest_size=3, seed=1, probe=0), 80)
    assert not unprobed.resting  # without a probe every member works for the whole window
    young = _woken_then(SelectClassifier(window=2000, forest_size=3, seed=1, probe=50), 80)
    assert young.woken < young.patience  # a change within the start's window ...
    assert not young.resting  # ... shortens nothing: the members are still learning


def test_categories_reach_the_trees_as_strings_and_the_linear_members_one_hot() -> None:
    spec = Spec.model_validate(
        {
            "features": [{"name": "x", "type": "number"}, {"name": "c", "type": "category"}],
            "label": {"kind": "number"},
        }
    )
    model = build_pipeline(ModelSpec(pipeline="driftline.SelectRegressor"), spec)
    rng = random.Random(6)
    for _ in range(600):
        c = rng.choice("abc")
        model.learn_one({"x": rng.uniform(0, 1), "c": c}, {"a": 1.0, "b": 5.0, "c": 9.0}[c])
    selector = model.steps["SelectRegressor"]
    assert selector.losses[selector.best] < 0.2 * selector.losses["mean"]
    assert abs(model.predict_one({"x": 0.5, "c": "b"}) - 5.0) < 0.5


def test_an_untrained_selector_predicts_nothing_harmful() -> None:
    assert SelectClassifier().predict_one({"a": 1.0}) is None
    assert SelectRegressor().predict_one({"a": 1.0}) == 0.0


def test_it_builds_from_a_config_and_serves_many_classes_through_the_predictor() -> None:
    spec = Spec.model_validate(
        {
            "features": [{"name": "x", "type": "number"}, {"name": "c", "type": "category"}],
            "label": {"kind": "class", "classes": ["low", "mid", "high"]},
        }
    )
    model = build_pipeline(
        ModelSpec.model_validate(
            {"pipeline": [{"estimator": "driftline.SelectClassifier", "params": {"window": 50}}]}
        ),
        spec,
    )
    rng = random.Random(3)
    for _ in range(400):
        v = rng.uniform(0, 3)
        model.learn_one({"x": v, "c": "ab"[int(v) % 2]}, ["low", "mid", "high"][int(v)])
    predictor = Predictor.river(model, spec=spec, spec_sha256="0" * 64)
    restored = pickle.loads(pickle.dumps(predictor))  # noqa: S301 - our own bytes
    assert restored.predict_many([{"x": 0.2, "c": "a"}, {"x": 2.8, "c": "a"}]) == ["low", "high"]


def test_a_selector_pickled_before_resting_existed_restores_and_learns_as_before() -> None:
    model = SelectRegressor(window=50, forest_size=3, seed=1)
    for i in range(100):
        model.learn_one({"x": float(i % 10)}, 2.0 * (i % 10))
    state = dict(model.__dict__)
    for name in ("rest_every", "patience", "margin", "keep", "resting", "own", "own_square"):
        state.pop(name)
    state.pop("floor", None)
    state.pop("woken", None)
    state.pop("prior", None)
    state.pop("probe", None)
    state["scaler"] = state.pop("view")  # what an older selector called its one transformer
    old = SelectRegressor.__new__(SelectRegressor)
    old.__setstate__(state)
    for i in range(300):
        old.learn_one({"x": float(i % 10)}, 2.0 * (i % 10))
    assert not old.resting  # no resting without the settings: every member learns
    assert abs(old.predict_one({"x": 4.0}) - 8.0) < 1.0
