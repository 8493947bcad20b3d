"""The streams ``bench defaults`` scores on: River's drifting generators, River's shipped
data sets and a stationary seasonal stream, each with the positions of its drifts.

Every stream yields ``(features, label)`` with string feature names and plain Python
values, the way a producer would send them. Nothing here is tuned to a model.

>>> stream = STREAMS["sea_abrupt"]
>>> rows = list(stream.rows(200, seed=1))
>>> len(rows), sorted(rows[0][0]), stream.drifts(200)
(200, ['0', '1', '2'], (100,))
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from river import datasets
from river.datasets import synth

Row = tuple[dict[str, Any], Any]


@dataclass(frozen=True)
class BenchStream:
    """One stream: a row generator, where its drifts are, and whether it is stationary."""

    name: str
    make: Callable[[int, int], Iterable[tuple[dict[Any, Any], Any]]]
    drift_at: Callable[[int], tuple[int, ...]]
    """Example positions where a concept changes (empty: none known)."""
    size: int | None = None
    """Rows in a finite data set (None: a generator, as many as asked)."""
    kind: str = "class"

    def rows(self, n: int, *, seed: int) -> Iterator[Row]:
        """Up to ``n`` rows (a data set may hold fewer)."""
        n = min(n, self.size) if self.size else n
        for x, y in itertools.islice(self.make(n, seed), n):
            yield {str(k): _plain(v) for k, v in x.items()}, _plain(y)

    def drifts(self, n: int) -> tuple[int, ...]:
        """Drift positions for a run of ``n`` rows."""
        n = min(n, self.size) if self.size else n
        return self.drift_at(n)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _switch(first: Any, second: Any, n: int, seed: int, *, width: int = 1) -> Any:
    """``first`` up to the middle, then ``second`` (abrupt), or a sigmoid blend of
    ``width`` rows around the middle (gradual)."""
    if width <= 1:
        return itertools.chain(itertools.islice(first, n // 2), second)
    return synth.ConceptDriftStream(
        stream=first, drift_stream=second, position=n // 2, width=width, seed=seed
    )


def _recurring(make: Callable[[int], Any], functions: tuple[int, ...], n: int) -> Any:
    """Concepts one after the other, ``n / len(functions)`` rows each."""
    part = n // len(functions)
    return itertools.chain.from_iterable(
        itertools.islice(make(f), part if i < len(functions) - 1 else n - part * i)
        for i, f in enumerate(functions)
    )


def _seasonal(n: int, seed: int) -> Iterator[tuple[dict[str, Any], bool]]:
    """A stationary stream with a strong daily cycle (a "day" is 480 rows).

    Temperature and humidity swing with the hour; the label depends on them the same way
    all the time (a stable concept with 10 % noise), plus a monotonic time stamp.
    """
    rng = random.Random(seed)
    for t in range(n):
        phase = 2 * math.pi * (t % 480) / 480
        temperature = 15 + 10 * math.sin(phase) + rng.gauss(0, 2)
        humidity = 60 - 20 * math.sin(phase + 0.5) + rng.gauss(0, 5)
        wind = abs(rng.gauss(3, 2))
        rain = temperature < 14 and humidity > 62
        label = (not rain) if rng.random() > 0.1 else rain
        yield (
            {
                "timestamp": 1_700_000_000 + 180 * t,
                "temperature": round(temperature, 2),
                "humidity": round(humidity, 2),
                "wind": round(wind, 2),
            },
            label,
        )


def _dataset(name: str) -> Callable[[int, int], Iterable[tuple[dict[Any, Any], Any]]]:
    """A data set River ships, by class name (the same rows whatever the seed)."""

    def make(n: int, seed: int) -> Iterable[tuple[dict[Any, Any], Any]]:
        rows: Iterable[tuple[dict[Any, Any], Any]] = getattr(datasets, name)()
        return rows

    return make


def _half(n: int) -> tuple[int, ...]:
    return (n // 2,)


def _none(n: int) -> tuple[int, ...]:
    return ()


def _thirds(n: int) -> tuple[int, ...]:
    return (n // 3, 2 * (n // 3))


STREAMS: dict[str, BenchStream] = {
    s.name: s
    for s in (
        BenchStream(
            "sea_abrupt",
            lambda n, seed: _switch(
                synth.SEA(variant=0, seed=seed), synth.SEA(variant=3, seed=seed + 1), n, seed
            ),
            _half,
        ),
        BenchStream(
            "agrawal_abrupt",
            lambda n, seed: _switch(
                synth.Agrawal(classification_function=0, seed=seed),
                synth.Agrawal(classification_function=4, seed=seed + 1),
                n,
                seed,
            ),
            _half,
        ),
        BenchStream(
            "agrawal_gradual",
            lambda n, seed: _switch(
                synth.Agrawal(classification_function=1, seed=seed),
                synth.Agrawal(classification_function=6, seed=seed + 1),
                n,
                seed,
                width=max(1, n // 10),
            ),
            _half,
        ),
        BenchStream(
            "hyperplane",
            lambda n, seed: synth.Hyperplane(
                seed=seed,
                n_features=10,
                n_drift_features=5,
                mag_change=0.001,
                noise_percentage=0.05,
            ),
            _half,  # incremental drift all along: "after" is the second half
        ),
        BenchStream(
            "rbf_drift",
            lambda n, seed: synth.RandomRBFDrift(
                seed_model=seed,
                seed_sample=seed + 1,
                n_classes=3,
                n_features=8,
                n_centroids=20,
                change_speed=0.0005,
                n_drift_centroids=10,
            ),
            _half,
        ),
        BenchStream(
            "led_drift",
            lambda n, seed: _switch(
                synth.LEDDrift(seed=seed, noise_percentage=0.1, n_drift_features=0),
                synth.LEDDrift(seed=seed + 1, noise_percentage=0.1, n_drift_features=5),
                n,
                seed,
            ),
            _half,
        ),
        BenchStream(
            "stagger_recurring",
            lambda n, seed: _recurring(
                lambda f: synth.STAGGER(
                    classification_function=f, seed=seed, balance_classes=False
                ),
                (0, 1, 0),
                n,
            ),
            _thirds,
        ),
        BenchStream(
            "sine_abrupt",
            lambda n, seed: _switch(
                synth.Sine(classification_function=0, seed=seed),
                synth.Sine(classification_function=2, seed=seed + 1),
                n,
                seed,
            ),
            _half,
        ),
        BenchStream("phishing", _dataset("Phishing"), _none, size=1250),
        BenchStream("bananas", _dataset("Bananas"), _none, size=5300),
        BenchStream("image_segments", _dataset("ImageSegments"), _none, size=2310),
        BenchStream("seasonal", _seasonal, _none),
        BenchStream(
            "friedman_drift",
            lambda n, seed: synth.FriedmanDrift(
                drift_type="gra", position=(n // 3, 2 * (n // 3)), seed=seed
            ),
            _thirds,
            kind="number",
        ),
        BenchStream(
            "trump_approval",
            _dataset("TrumpApproval"),
            _none,
            size=1001,
            kind="number",
        ),
        BenchStream(
            "chick_weights",
            _dataset("ChickWeights"),
            _none,
            size=578,
            kind="number",
        ),
    )
}
"""Stream name -> stream."""

QUICK = (
    "sea_abrupt",
    "agrawal_abrupt",
    "stagger_recurring",
    "phishing",
    "seasonal",
    "friedman_drift",
    "trump_approval",
)
"""The streams of a quick run (every kind of change, both label kinds)."""
