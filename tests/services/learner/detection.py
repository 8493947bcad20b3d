"""Drift-detection quality of the learner's pure core: detection delays and false-alarm
rates over seeds.

:func:`evaluate_detection` runs a :class:`~services.learner.core.StreamLearner` over a
synthetic stream per seed and attributes each alarm either to a known change (the first
alarm at or after a change, within ``tolerance`` examples, detects it) or counts it as a
false alarm; the false-alarm rate is per 100,000 examples outside the changes' tolerance
windows. The streams come from :mod:`tests.streams`.

>>> from tests.streams import agrawal, agrawal_config
>>> cfg = agrawal_config(detector="ADWIN")
>>> report = evaluate_detection(
...     lambda seed: agrawal(seed, n=3000, switch_at=1500), cfg, seeds=[1], changes=[1500],
...     tolerance=500)
>>> r = report.per_seed[0]
>>> r.delays[0] is not None and r.delays[0] <= 500, r.false_alarms
(True, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from schemas.streams import StreamConfig
from services.learner.core import StreamLearner
from services.learner.drift import Alarm
from tests.streams import Example


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
