"""Drift-detection quality of the pure core: detection delays and false-alarm rates.

:func:`evaluate_detection` runs a :class:`~services.learner.core.StreamLearner` over a
synthetic stream per seed and attributes each alarm either to a known change (the first
alarm at or after a change, within ``tolerance`` examples, detects it) or counts it as a
false alarm; the false-alarm rate is per 100,000 examples outside the changes' tolerance
windows. The stream builders (:func:`agrawal`, :func:`hyperplane`) make the usual River
synthetic streams with string feature names and a spec to match.

>>> cfg = agrawal_config(detector="ADWIN")
>>> report = evaluate_detection(
...     lambda seed: agrawal(seed, n=3000, switch_at=1500), cfg, seeds=[1], changes=[1500],
...     tolerance=500)
>>> r = report.per_seed[0]
>>> r.delays[0] is not None and r.delays[0] <= 500, r.false_alarms
(True, 0)
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from river.datasets import synth

from schemas.streams import StreamConfig
from services.learner.core import StreamLearner
from services.learner.drift import Alarm

__all__ = [
    "DetectionReport",
    "SeedResult",
    "agrawal",
    "agrawal_config",
    "evaluate_detection",
    "hyperplane",
    "hyperplane_config",
]

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


@dataclass(frozen=True)
class SeedResult:
    """One seed's run: alarms, the delay to each change and the false alarms."""

    seed: int
    examples: int
    changes: tuple[int, ...]
    """0-based index of the first example after each change."""
    delays: tuple[int | None, ...]
    """Per change: examples from the change to its first alarm (the firing one included);
    None when no alarm came within the tolerance."""
    false_alarms: int
    stationary_examples: int
    """Examples outside every change's tolerance window."""
    alarms: tuple[Alarm, ...]


@dataclass(frozen=True)
class DetectionReport:
    """Results over seeds, with the summary figures a benchmark prints."""

    per_seed: tuple[SeedResult, ...]

    @property
    def delays(self) -> list[int | None]:
        """Every change's delay, seed by seed (None: missed)."""
        return [d for r in self.per_seed for d in r.delays]

    @property
    def detected(self) -> float:
        """Fraction of changes detected within the tolerance."""
        delays = self.delays
        return sum(d is not None for d in delays) / len(delays) if delays else 1.0

    @property
    def false_alarms(self) -> int:
        """False alarms, summed over the seeds."""
        return sum(r.false_alarms for r in self.per_seed)

    @property
    def false_alarms_per_100k(self) -> float:
        """False alarms per 100,000 stationary examples, over all seeds."""
        n = sum(r.stationary_examples for r in self.per_seed)
        return 100_000 * self.false_alarms / n if n else 0.0


def evaluate_detection(
    make_stream: Callable[[int], Iterable[Example]],
    config: StreamConfig,
    *,
    seeds: Sequence[int],
    changes: Sequence[int] = (),
    tolerance: int = 500,
    kinds: Sequence[str] = ("concept", "data"),
) -> DetectionReport:
    """Run the core over ``make_stream(seed)`` for each seed and score its alarms.

    Parameters
    ----------
    make_stream
        Seed -> ``(features, label)`` pairs.
    config
        The stream config; its ``model.seed`` is replaced by each seed.
    seeds
        One run per seed.
    changes
        0-based indices where the concept (or data) changes.
    tolerance
        An alarm within this many examples after a change detects it.
    kinds
        Which alarm kinds count (``concept``, ``data``).
    """
    results = []
    for seed in seeds:
        model = config.model.model_copy(update={"seed": seed})
        learner = StreamLearner(config.model_copy(update={"model": model}))
        alarms: list[Alarm] = []
        n = 0
        for x, y in make_stream(seed):
            out = learner.process(x, y)
            n += 1
            alarms.extend(a for a in out.alarms if a.kind in kinds)
        results.append(_score(seed, n, tuple(changes), tolerance, alarms))
    return DetectionReport(per_seed=tuple(results))


def _score(
    seed: int, n: int, changes: tuple[int, ...], tolerance: int, alarms: list[Alarm]
) -> SeedResult:
    delays: list[int | None] = []
    attributed: set[int] = set()
    for change in changes:
        delay = None
        for i, alarm in enumerate(alarms):
            index = alarm.example_count - 1
            if change <= index < change + tolerance:
                attributed.add(i)
                if delay is None:
                    delay = index - change + 1
        delays.append(delay)
    covered = set().union(*(range(c, min(c + tolerance, n)) for c in changes)) if changes else ()
    return SeedResult(
        seed=seed,
        examples=n,
        changes=changes,
        delays=tuple(delays),
        false_alarms=len(alarms) - len(attributed),
        stationary_examples=n - len(covered),
        alarms=tuple(alarms),
    )


# -- streams ----------------------------------------------------------------------------


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
    return StreamConfig.model_validate(
        {
            "stream": "agrawal",
            "spec": {
                "features": [{"name": f, "type": "number"} for f in AGRAWAL_FEATURES],
                "label": {"kind": "class", "classes": [False, True]},
            },
            "model": {"pipeline": "tree.HoeffdingTreeClassifier"},
            "policy": {"drift": drift, **policy},
        }
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
