"""Prequential metrics are River's own: identical to progressive_val_score."""

from __future__ import annotations

import itertools
import math

import pytest
from river import datasets, evaluate, metrics
from river.datasets import synth

from schemas.streams import ModelSpec, Spec
from services.learner.pipeline import build_pipeline
from services.learner.prequential import Prequential
from tests.streams import agrawal_stream

PHISHING = Spec.model_validate(
    {
        "features": [
            {"name": n, "type": "number"}
            for n in (
                "empty_server_form_handler",
                "popup_window",
                "https",
                "request_from_other_domain",
                "anchor_from_other_domain",
                "is_popular",
                "long_url",
                "age_of_domain",
                "ip_in_url",
            )
        ],
        "label": {"kind": "class", "classes": [False, True]},
    }
)
AGRAWAL = agrawal_stream("agrawal").spec
FRIEDMAN = Spec.model_validate(
    {
        "features": [{"name": str(i), "type": "number"} for i in range(10)],
        "label": {"kind": "number"},
    }
)


def reference(data: list, spec: Spec, pipeline: str, metric: metrics.base.Metric) -> float:
    model = build_pipeline(ModelSpec(pipeline=pipeline), spec)
    return float(evaluate.progressive_val_score(data, model, metric).get())


def ours(data: list, spec: Spec, pipeline: str, window: int = 100) -> dict[str, float]:
    pq = Prequential(
        build_pipeline(ModelSpec(pipeline=pipeline), spec), task=spec.label.kind, window=window
    )
    for x, y in data:
        pq.step(x, y)
    snap = pq.snapshot()
    assert snap.example_count == len(data)
    return snap.values


@pytest.mark.parametrize(
    ("name", "pipeline"),
    [
        ("phishing", "preprocessing.StandardScaler | linear_model.LogisticRegression"),
        ("phishing", "tree.HoeffdingTreeClassifier"),
        ("agrawal", "preprocessing.StandardScaler | linear_model.LogisticRegression"),
        ("agrawal", "naive_bayes.GaussianNB"),
    ],
)
def test_classification_is_identical_to_progressive_val_score(name: str, pipeline: str) -> None:
    if name == "phishing":
        data, spec = list(datasets.Phishing()), PHISHING
    else:
        data = list(synth.Agrawal(classification_function=2, seed=3).take(2000))
        data = [({str(k): v for k, v in x.items()}, y) for x, y in data]
        spec = AGRAWAL
    values = ours(data, spec, pipeline)
    assert values["accuracy"] == reference(data, spec, pipeline, metrics.Accuracy())
    assert values["f1_macro"] == reference(data, spec, pipeline, metrics.MacroF1())
    assert values["log_loss"] == reference(data, spec, pipeline, metrics.LogLoss())


def test_regression_is_identical_to_progressive_val_score() -> None:
    data = [({str(k): v for k, v in x.items()}, y) for x, y in synth.Friedman(seed=1).take(1500)]
    pipeline = "preprocessing.StandardScaler | linear_model.LinearRegression"
    values = ours(data, FRIEDMAN, pipeline)
    for name, metric in (("mae", metrics.MAE()), ("rmse", metrics.RMSE()), ("r2", metrics.R2())):
        assert values[name] == pytest.approx(reference(data, FRIEDMAN, pipeline, metric), rel=1e-12)


def test_rolling_values_cover_the_last_window_only() -> None:
    data = list(itertools.islice(datasets.Phishing(), 600))
    pipeline = "preprocessing.StandardScaler | linear_model.LogisticRegression"
    pq = Prequential(
        build_pipeline(ModelSpec(pipeline=pipeline), PHISHING), task="class", window=100
    )
    hits = []
    for x, y in data:
        step = pq.step(x, y)
        hits.append(step.error == 0.0)
    values = pq.snapshot().values
    assert values["rolling_accuracy"] == pytest.approx(sum(hits[-100:]) / 100)
    assert values["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert set(values) == {
        "accuracy",
        "rolling_accuracy",
        "f1_macro",
        "rolling_f1_macro",
        "log_loss",
        "rolling_log_loss",
    }
    assert all(math.isfinite(v) for v in values.values())


def test_an_empty_evaluator_reports_no_values() -> None:
    pq = Prequential(build_pipeline(ModelSpec(), PHISHING), task="class", window=10)
    snap = pq.snapshot()
    assert snap.example_count == 0 and snap.window == 10
    assert all(math.isfinite(v) for v in snap.values.values())


def test_multi_class_log_loss_is_the_cross_entropy() -> None:
    """With seven classes the log loss is -ln p(true class), River's CrossEntropy, not the
    binary loss (which gives -ln 1e-15 = 34.5 for a class it does not know)."""
    from river import datasets, metrics, tree

    rows = list(datasets.ImageSegments().take(400))
    pq = Prequential(tree.HoeffdingTreeClassifier(), task="class", window=100, classes=7)
    reference = metrics.CrossEntropy()
    twin = tree.HoeffdingTreeClassifier()
    for x, y in rows:
        proba = twin.predict_proba_one(x)
        if proba:
            reference.update(y, proba)
        twin.learn_one(x, y)
        pq.step(x, y)
    value = pq.snapshot().values["log_loss"]
    assert value == reference.get()
    assert value < 5.0
