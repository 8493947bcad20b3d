"""Real data and small real models for the evaluator's tests: Agrawal loans, whose
classification functions are different concepts, and decision trees trained on one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from river.datasets import synth
from sklearn.tree import DecisionTreeClassifier

from schemas import LabelledExample, StreamConfig
from services.common.predictor import Predictor
from tests.streams import AGRAWAL_FEATURES, agrawal_stream

FEATURES = AGRAWAL_FEATURES
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def config(stream: str = "loans", **policy: Any) -> StreamConfig:
    """A published config of an Agrawal stream (numbers only, label 0/1)."""
    return agrawal_stream(
        stream,
        version=1,
        policy={
            "promotion": "shadow",
            "rolling_window": 300,
            "shadow_min_examples": 200,
            "shadow_confidence": 0.95,
            "rollback_margin": 0.05,
            **policy,
        },
    )


def rows(function: int, n: int, seed: int) -> list[tuple[dict[str, float], int]]:
    """``n`` Agrawal examples under classification function ``function``."""
    data = synth.Agrawal(classification_function=function, seed=seed)
    return [({f: float(x[f]) for f in FEATURES}, int(y)) for x, y in itertools.islice(data, n)]


def examples(
    stream: str, function: int, n: int, seed: int, *, start: int = 0
) -> list[LabelledExample]:
    """Validated examples (ids ``start..start+n-1``) as the validator emits them."""
    return [
        LabelledExample(
            stream=stream,
            example_id=str(start + i),
            features=dict(x),
            label=y,
            event_time=T0 + timedelta(seconds=start + i),
            spec_version=1,
        )
        for i, (x, y) in enumerate(rows(function, n, seed))
    ]


def tree(cfg: StreamConfig, function: int, *, n: int = 2000, seed: int = 1) -> Predictor:
    """A decision tree that learned concept ``function`` (near perfect on it)."""
    predictor = Predictor.sklearn(
        DecisionTreeClassifier(max_depth=6, random_state=0),
        spec=cfg.spec,
        spec_sha256=cfg.spec_sha256(),
    )
    data = rows(function, n, seed)
    assert predictor.vectorizer is not None  # noqa: S101
    predictor.model.fit(predictor.vectorizer.matrix([x for x, _ in data]), [y for _, y in data])
    return predictor
