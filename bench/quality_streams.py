"""The quality benchmark's suite: drifting streams with known drift points, real data.

Each case builds a finite :class:`~services.demo.stream.DemoStream` whose config is
exactly what ``driftline spec infer`` writes for its rows (nothing tuned per stream).
Synthetic streams come from ``river.datasets.synth`` with a seed; a drift switches from
one concept to the next (abrupt: at its position; gradual: over ``width`` examples,
``ConceptDriftStream``'s sigmoid). Real data sets are River's offline ones, with no known
drift point (the score then covers every served row).

>>> case = CASES["sea-abrupt"]
>>> stream = case.stream(seed=1, size=1000)
>>> stream.size, [d.position for d in stream.drifts], stream.config.policy.primary_metric
(1000, [600, 800], 'accuracy')
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from services.demo.stream import DemoStream, DriftPoint
from services.ingest.datasets import Row, river_rows
from services.ingest.infer import infer_config

Concept = Callable[[int, int], Iterator[tuple[dict[Any, Any], Any]]]
"""(concept index, seed) -> River rows of that concept."""


@dataclass(frozen=True)
class Case:
    """One stream of the suite: how to build it and where it drifts."""

    name: str
    description: str
    concepts: Concept | None  # None: a real data set (``dataset``)
    drifts: tuple[tuple[float, float, str], ...] = ()  # (position share, width share, kind)
    dataset: str | None = None
    label: Callable[[Any], Any] = lambda y: y

    @property
    def synthetic(self) -> bool:
        """Seeded (run with several seeds) rather than a fixed data set."""
        return self.concepts is not None

    def stream(self, *, seed: int, size: int) -> DemoStream:
        """The stream (``size`` rows; a data set keeps its own size) with its config."""
        rows = self._rows(seed, size)
        points = tuple(
            DriftPoint(int(at * len(rows)), max(1, int(width * len(rows))), kind)  # type: ignore[arg-type]
            for at, width, kind in self.drifts
        )
        config = infer_config(self.name, rows).config
        frozen = tuple(rows)
        return DemoStream(
            name=self.name,
            description=self.description,
            size=len(frozen),
            drifts=points,
            config=config,
            seed=seed if self.synthetic else None,
            _source=lambda: ((str(i), x, y) for i, (x, y) in enumerate(frozen)),
        )

    def _rows(self, seed: int, size: int) -> list[Row]:
        if self.concepts is None:
            assert self.dataset is not None  # noqa: S101 - a case has one or the other
            return [(_plain(x), _value(y)) for x, y in river_rows(self.dataset)]
        gens = [self.concepts(k, seed + k) for k in range(len(self.drifts) + 1)]
        rng = random.Random(seed)  # noqa: S311 - simulation, not security
        rows: list[Row] = []
        for i in range(size):
            concept = 0
            for k, (at, width, _) in enumerate(self.drifts):
                position, span = at * size, max(1.0, width * size)
                if span <= 1:
                    newer = i >= position
                else:
                    z = max(-50.0, min(50.0, -4.0 * (i - position) / span))
                    newer = rng.random() < 1.0 / (1.0 + math.exp(z))
                if newer:
                    concept = k + 1
            x, y = next(gens[concept])
            rows.append((_plain(x), self.label(_value(y))))
        return rows


def _value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _plain(x: dict[Any, Any]) -> dict[str, Any]:
    """River's features as the stream's: names as strings, numpy scalars as Python ones."""
    out: dict[str, Any] = {}
    for k, v in x.items():
        name = f"x{k + 1}" if isinstance(k, int) else str(k)
        value = _value(v)
        out[name] = value.timestamp() if hasattr(value, "timestamp") else value
    return out


def _sea(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    return iter(synth.SEA(variant=(0, 1, 2)[concept], noise=0.1, seed=seed))


def _agrawal(functions: tuple[int, ...]) -> Concept:
    def concepts(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
        from river.datasets import synth

        for x, y in synth.Agrawal(classification_function=functions[concept], seed=seed):
            yield (
                {
                    k: (str(int(v)) if k in ("elevel", "car", "zipcode") else v)
                    for k, v in x.items()
                },
                y,
            )

    return concepts


def _hyperplane(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    return iter(synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001))


def _rbf(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    return iter(
        synth.RandomRBFDrift(
            seed_model=seed, seed_sample=seed + 100, n_classes=2, n_features=8, change_speed=0.001
        )
    )


def _led(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    # the same seven segments, then four of them swapped with irrelevant ones
    return iter(
        synth.LEDDrift(
            seed=seed,
            noise_percentage=0.1,
            irrelevant_features=True,
            n_drift_features=(0, 4)[concept],
        )
    )


def _stagger(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    # a recurring concept: 0, then 1, then 0 again
    return iter(synth.STAGGER(classification_function=(0, 1, 0)[concept], seed=seed))


def _sine(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    return iter(
        synth.Sine(classification_function=(0, 1)[concept], seed=seed, balance_classes=True)
    )


def _seasonal(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    """No concept drift: a daily temperature cycle that data-drift tests may mistake for one."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    i = 0
    while True:
        hour = (i // 10) % 24
        temperature = 15 + 8 * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 2)
        humidity = rng.uniform(20, 90)
        wind = rng.uniform(0, 30)
        score = 0.12 * (temperature - 15) - 0.04 * (humidity - 55) + 0.05 * (wind - 15)
        label = int(score + rng.gauss(0, 0.6) > 0)
        yield {"hour": hour, "temperature": temperature, "humidity": humidity, "wind": wind}, label
        i += 1


def _friedman(concept: int, seed: int) -> Iterator[tuple[dict[Any, Any], Any]]:
    from river.datasets import synth

    # global abrupt drift ('gra'): the suite places the change, so concept 0 never reaches
    # the generator's change point and concept 1 is past it from its first row
    never = 10**12
    position = (never, never + 1) if concept == 0 else (0, never)
    return iter(synth.FriedmanDrift(drift_type="gra", position=position, seed=seed))


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "sea-abrupt",
            "SEA, 10% noise: abrupt drifts",
            _sea,
            ((0.6, 0, "abrupt"), (0.8, 0, "abrupt")),
        ),
        Case(
            "agrawal-abrupt",
            "Agrawal loans: abrupt drift, function 0 -> 2",
            _agrawal((0, 2)),
            ((0.6, 0, "abrupt"),),
        ),
        Case(
            "agrawal-gradual",
            "Agrawal loans: gradual drift, function 2 -> 5",
            _agrawal((2, 5)),
            ((0.6, 0.1, "gradual"),),
        ),
        Case("hyperplane-incremental", "rotating hyperplane: incremental drift", _hyperplane),
        Case("rbf-incremental", "RandomRBFDrift: moving centroids", _rbf),
        Case(
            "led-drift",
            "LED digits (10 classes, 10% noise): 4 segments swapped",
            _led,
            ((0.6, 0, "abrupt"),),
        ),
        Case(
            "stagger-recurring",
            "STAGGER: function 0 -> 1 -> 0 (a recurring concept)",
            _stagger,
            ((0.6, 0, "abrupt"), (0.8, 0, "abrupt")),
        ),
        Case("sine-abrupt", "Sine: SINE1 -> reversed SINE1", _sine, ((0.6, 0, "abrupt"),)),
        Case("seasonal-stationary", "a daily cycle, no concept drift", _seasonal),
        Case(
            "friedman-drift",
            "FriedmanDrift (a number label): global abrupt drift",
            _friedman,
            ((0.6, 0, "abrupt"),),
        ),
        Case("phishing", "River's Phishing (real)", None, dataset="river:Phishing"),
        Case("bananas", "River's Bananas (real)", None, dataset="river:Bananas"),
        Case(
            "image-segments",
            "River's ImageSegments (real, 7 classes)",
            None,
            dataset="river:ImageSegments",
        ),
        Case(
            "trump-approval",
            "River's TrumpApproval (real, a number)",
            None,
            dataset="river:TrumpApproval",
        ),
    )
}
"""Every stream of the full suite, by name."""

QUICK = ("sea-abrupt", "led-drift", "friedman-drift", "bananas")
"""The streams of ``--quick``: binary, multi-class, regression, real."""
