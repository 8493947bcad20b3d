"""Small models for registry tests."""

from __future__ import annotations

from river import linear_model

from schemas import StreamConfig
from services.common.predictor import Predictor

CONFIG = StreamConfig.model_validate(
    {
        "stream": "sea",
        "version": 1,
        "spec": {
            "features": [
                {"name": "x", "type": "number"},
                {"name": "c", "type": "category", "categories": ["a", "b"]},
            ],
            "label": {"kind": "class", "classes": [False, True]},
        },
    }
)


def predictor(steps: int = 20) -> Predictor:
    """A tiny trained River model wrapped as a predictor."""
    model = linear_model.LogisticRegression()
    for i in range(steps):
        model.learn_one({"x": float(i % 2)}, i % 2 == 1)
    return Predictor.river(model, spec=CONFIG.spec, spec_sha256=CONFIG.spec_sha256())
