"""The test streams, each written once: a generator and the config that matches it.

Agrawal loans (river's ``synth.Agrawal``: nine numeric features; its classification
functions are different concepts, so switching function is a pure concept drift) serve
most tests; :func:`agrawal_stream` is the one Agrawal config that each test directory
adapts with its own policy. River's rotating Hyperplane serves gradual drift.

>>> config = agrawal_stream("loans", version=1, policy={"rolling_window": 300})
>>> [f.name for f in config.spec.features][:3], config.spec.label.classes
(['salary', 'commission', 'age'], (0, 1))
>>> [f.name for f in agrawal_stream("s", segmented=True).spec.features][-2:]
['loan', 'group']
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

from river.datasets import synth

from schemas.streams import StreamConfig

Example = tuple[dict[str, Any], Any]
AGRAWAL_FEATURES = (
    "salary",
    "commission",
    "age",
    "elevel",
    "car",
    "zipcode",
    "hvalue",
    "hyears",
    "loan",
)
# The segmented Agrawal stream: the continuous numbers plus a category ``group``
# (``elevel`` below 2 or not), for the trainer's fairness gate.
AGRAWAL_NUMBERS = ("salary", "commission", "age", "hvalue", "hyears", "loan")
GROUP = {"name": "group", "type": "category", "categories": ["low", "high"]}


def agrawal_stream(
    stream: str,
    *,
    version: int | None = None,
    segmented: bool = False,
    classes: Sequence[Any] = (0, 1),
    pipeline: str | None = None,
    policy: dict[str, Any] | None = None,
) -> StreamConfig:
    """An Agrawal stream's config: every feature a number (``segmented``: the numbers and
    the category ``group``), a class label, the given pipeline and policy."""
    features: list[dict[str, Any]] = (
        [*({"name": f, "type": "number"} for f in AGRAWAL_NUMBERS), GROUP]
        if segmented
        else [{"name": f, "type": "number"} for f in AGRAWAL_FEATURES]
    )
    body: dict[str, Any] = {
        "stream": stream,
        "spec": {"features": features, "label": {"kind": "class", "classes": list(classes)}},
        "policy": policy or {},
    }
    if version is not None:
        body["version"] = version
    if pipeline is not None:
        body["model"] = {"pipeline": pipeline}
    return StreamConfig.model_validate(body)


def segment_features(x: dict[str, Any]) -> dict[str, Any]:
    """An Agrawal example's features as the segmented stream has them."""
    out: dict[str, Any] = {f: float(x[f]) for f in AGRAWAL_NUMBERS}
    out["group"] = "low" if x["elevel"] < 2 else "high"
    return out


def agrawal(
    seed: int,
    *,
    n: int,
    switch_at: int | None = None,
    functions: tuple[int, int] = (0, 2),
    label_noise: tuple[float, float] = (0.0, 0.0),
) -> Iterator[Example]:
    """Agrawal examples: ``functions[0]`` then, from ``switch_at``, ``functions[1]``.

    The features keep their distribution across the switch (pure concept drift);
    ``label_noise`` flips that fraction of labels before/after the switch.
    """
    switch = n if switch_at is None else switch_at
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    first = synth.Agrawal(classification_function=functions[0], seed=seed)
    second = synth.Agrawal(classification_function=functions[1], seed=seed + 10_000)
    for i, (x, y) in enumerate(
        itertools.chain(first.take(switch), second.take(max(n - switch, 0)))
    ):
        noise = label_noise[0] if i < switch else label_noise[1]
        label = bool(y)
        if noise and rng.random() < noise:
            label = not label
        yield {k: float(v) for k, v in x.items()}, label


def agrawal_config(detector: str = "ADWIN", **policy: Any) -> StreamConfig:
    """A config for :func:`agrawal` streams (a Hoeffding tree, the given detector)."""
    drift = {"detector": detector, **policy.pop("drift", {})}
    return agrawal_stream(
        "agrawal",
        classes=(False, True),
        pipeline="tree.HoeffdingTreeClassifier",
        policy={"drift": drift, **policy},
    )


def hyperplane(
    seed: int,
    *,
    n: int,
    n_features: int = 10,
    n_drift_features: int = 2,
    mag_change: float = 0.0,
    noise: float = 0.05,
) -> Iterator[Example]:
    """River's rotating Hyperplane (gradual drift when ``mag_change`` > 0)."""
    stream = synth.Hyperplane(
        seed=seed,
        n_features=n_features,
        n_drift_features=n_drift_features,
        mag_change=mag_change,
        noise_percentage=noise,
    )
    for x, y in stream.take(n):
        yield {f"x{k}": float(v) for k, v in x.items()}, bool(y)


def hyperplane_config(n_features: int = 10, detector: str = "ADWIN", **policy: Any) -> StreamConfig:
    """A config for :func:`hyperplane` streams (scaled logistic regression)."""
    drift = {"detector": detector, **policy.pop("drift", {})}
    return StreamConfig.model_validate(
        {
            "stream": "hyperplane",
            "spec": {
                "features": [
                    {"name": f"x{k}", "type": "number", "min": 0, "max": 1}
                    for k in range(n_features)
                ],
                "label": {"kind": "class", "classes": [False, True]},
            },
            "model": {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"},
            "policy": {"drift": drift, **policy},
        }
    )
