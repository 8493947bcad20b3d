"""Drift detection for one stream: concept drift on the error stream, data drift per feature.

Concept drift (:class:`ConceptDetector`) watches the online model's prequential errors (0/1
for classification, the absolute error for regression) with River's ``ADWIN`` (default),
``PageHinkley`` or ``KSWIN``, and alarms only on a *rise* of the error: a model getting
better is not drift.

- ADWIN: when it cuts its window, the mean error of the part it kept (the recent one) must
  be higher than that of the part it dropped.
- PageHinkley: run one-sided (``mode="up"``); another mode is refused.
- KSWIN: the mean of its recent ``stat_size`` errors must be higher than that of the rest
  of its window.

Data drift (:class:`DataDriftDetector`) compares tumbling windows of ``data_window``
examples against a reference window (the first one, refreshed after each detected drift):
number features by a two-sample Kolmogorov-Smirnov test on the present values, category and
bool features by a chi-square test on their frequencies (a missing value counts as its own
category; categories expected fewer than 5 times are pooled). A feature drifts when its
p-value is below ``data_alpha`` divided by the number of features tested (Bonferroni).

:class:`DriftMonitor` runs both and debounces them: after an emitted alarm, nothing more is
emitted for ``cooldown`` examples (one change, one event); detectors keep learning through
the cooldown and what they found is counted in :attr:`DriftMonitor.suppressed`. A concept
alarm triggers a retrain (:attr:`Alarm.retrain`); a data alarm only with
``policy.drift.data_drift_retrains``. Data alarms that do not retrain are debounced on
their own, so a reported feature shift never silences the concept detector.
Features in ``policy.drift.exclude_features`` are not tested for data drift.

All state is plain Python, numpy and River objects: picklable, and deterministic given the
same input order.

>>> from schemas.streams import DriftPolicy, FeatureSpec
>>> monitor = DriftMonitor(DriftPolicy(data_drift=False, cooldown=100), [])
>>> alarms = [a for i in range(3000) for a in monitor.update({}, float(i >= 1500 and i % 2))]
>>> [(a.kind, a.detector, 1500 < a.example_count < 1700) for a in alarms]
[('concept', 'ADWIN', True)]
"""

from __future__ import annotations

import collections
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from river import drift
from scipy import special, stats  # type: ignore[import-untyped]

from schemas.streams import DriftPolicy, FeatureSpec
from services.learner.errors import DriftPolicyError

__all__ = ["Alarm", "ConceptDetector", "DataDriftDetector", "DriftMonitor", "ks_2samp_asymp"]

_DETECTORS: dict[str, type] = {
    "ADWIN": drift.ADWIN,
    "PageHinkley": drift.PageHinkley,
    "KSWIN": drift.KSWIN,
}
_MISSING = "\x00missing"
_OTHER = "\x00other"


@dataclass(frozen=True)
class Alarm:
    """A detected drift; the edge turns it into a ``DriftDetected`` event.

    ``example_count`` is the number of examples the monitor had seen when it fired,
    this one included.
    """

    kind: Literal["concept", "data"]
    detector: str
    feature: str | None
    example_count: int
    statistics: dict[str, float]
    retrain: bool = True
    """Whether this alarm triggers a retrain (False: a data drift that is only reported)."""


# -- concept drift ----------------------------------------------------------------------


class ConceptDetector:
    """A River drift detector on the error stream that fires only when the error rises.

    Parameters
    ----------
    name
        ``ADWIN``, ``PageHinkley`` or ``KSWIN``.
    params
        Constructor params of that detector (checked; unknown names are refused).
    seed
        Seed of KSWIN's sampling (ignored by the others).
    """

    def __init__(
        self, name: str = "ADWIN", params: Mapping[str, Any] | None = None, *, seed: int = 42
    ) -> None:
        cls = _DETECTORS.get(name)
        if cls is None:
            raise DriftPolicyError(
                f"policy.drift.detector: {name!r} is not one of {', '.join(_DETECTORS)}"
            )
        kwargs = dict(params or {})
        accepted = [p for p in inspect.signature(cls).parameters if p not in {"seed", "window"}]
        for key, value in kwargs.items():
            if key not in accepted:
                raise DriftPolicyError(
                    f"policy.drift.params: {name} has no param {key!r} "
                    f"(accepted: {', '.join(accepted)})"
                )
            if key == "mode":
                if value != "up":
                    raise DriftPolicyError(
                        f"policy.drift.params: {name} mode must be 'up' (only a rise of the "
                        f"error is drift), got {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise DriftPolicyError(
                    f"policy.drift.params: {name} param {key!r} must be a number, got {value!r}"
                )
        if name == "PageHinkley":
            kwargs["mode"] = "up"
        if name == "KSWIN":
            kwargs["seed"] = seed
        try:
            self.detector = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise DriftPolicyError(f"policy.drift.params: {name}: {exc}") from exc
        self.name = name
        size = int(getattr(self.detector, "window_size", 0))
        self._recent: collections.deque[float] = collections.deque(maxlen=max(size, 1))
        self._sum = 0.0  # errors since the last rise (PageHinkley's "before")
        self._n = 0

    def update(self, error: float) -> dict[str, float] | None:
        """Add one error; the statistics of a detected rise, else None."""
        det = self.detector
        self._recent.append(error)
        self._sum += error
        self._n += 1
        if self.name == "ADWIN":
            n_before, mean_before = float(det.width), float(det.estimation)
            total_n, total_sum = n_before + 1, mean_before * n_before + error
            det.update(error)
            if not det.drift_detected:
                return None
            kept_n, kept_mean = float(det.width), float(det.estimation)
            dropped_n = total_n - kept_n
            if dropped_n <= 0:
                return None
            dropped_mean = (total_sum - kept_mean * kept_n) / dropped_n
            if kept_mean <= dropped_mean:
                return None  # the error fell: the model got better
            return {
                "error_before": dropped_mean,
                "error_after": kept_mean,
                "examples_before": dropped_n,
                "examples_after": kept_n,
            }
        det.update(error)
        if not det.drift_detected:
            return None
        if self.name == "KSWIN":
            k = int(det.stat_size)
            window = list(self._recent)
            older, recent = window[:-k], window[-k:]
            before = sum(older) / len(older) if older else 0.0
            after = sum(recent) / len(recent)
            if after <= before:
                return None
            return {
                "error_before": before,
                "error_after": after,
                "p_value": float(det.p_value),
            }
        # PageHinkley, one-sided: a detection is a rise by construction.
        before = self._sum / self._n
        recent = list(self._recent)
        self._sum, self._n = 0.0, 0
        return {"error_before": before, "error_after": recent[-1] if recent else error}


# -- data drift -------------------------------------------------------------------------


class DataDriftDetector:
    """Windowed two-sample tests per feature against a reference window.

    Parameters
    ----------
    features
        The spec's features (numbers get KS, categories and bools chi-square).
    window
        Examples per window (``policy.drift.data_window``).
    alpha
        Family-wise test level across features (``policy.drift.data_alpha``).
    """

    def __init__(self, features: Sequence[FeatureSpec], *, window: int, alpha: float) -> None:
        if window < 2:
            raise DriftPolicyError(f"policy.drift.data_window must be >= 2, got {window}")
        if not 0 < alpha < 1:
            raise DriftPolicyError(f"policy.drift.data_alpha must be in (0, 1), got {alpha}")
        self.numbers = tuple(f.name for f in features if f.type == "number")
        self.discrete = tuple(f.name for f in features if f.type != "number")
        self.window = window
        self.alpha = alpha
        self.reference: dict[str, Any] | None = None
        self._current = self._empty()
        self._count = 0

    def _empty(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: [] for name in self.numbers}
        out.update({name: collections.Counter() for name in self.discrete})
        return out

    def update(self, x: Mapping[str, Any]) -> tuple[str, dict[str, float]] | None:
        """Add one example; ``(feature, statistics)`` of the most significant drift, if any.

        Tests run once per full window; after a drift, the current window becomes the
        reference.
        """
        current, get = self._current, x.get
        for name in self.numbers:
            value = get(name)
            if type(value) is float:  # the usual case, the short way
                if value - value == 0.0:  # finite
                    current[name].append(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    current[name].append(float(value))
        for name in self.discrete:
            value = get(name)
            current[name][_MISSING if value is None else str(value)] += 1
        self._count += 1
        if self._count < self.window:
            return None
        current, self._current, self._count = self._current, self._empty(), 0
        if self.reference is None:
            self.reference = current
            return None
        results = self._tests(self.reference, current)
        if not results:
            return None
        threshold = self.alpha / len(results)
        drifted = {name: r for name, r in results.items() if r[1] < threshold}
        if not drifted:
            return None
        self.reference = current
        feature = min(drifted, key=lambda name: (drifted[name][1], name))
        statistic, p_value = drifted[feature]
        return feature, {
            "statistic": statistic,
            "p_value": p_value,
            "threshold": threshold,
            "features_tested": float(len(results)),
            "features_drifted": float(len(drifted)),
        }

    def _tests(
        self, reference: dict[str, Any], current: dict[str, Any]
    ) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        # Features with as many present values get one vectorised test (usually all).
        groups: dict[tuple[int, int], list[str]] = {}
        for name in self.numbers:
            n_ref, n_cur = len(reference[name]), len(current[name])
            if n_ref >= 20 and n_cur >= 20:
                groups.setdefault((n_ref, n_cur), []).append(name)
        for names in groups.values():
            statistics, p_values = ks_2samp_asymp(
                np.array([reference[name] for name in names], dtype=np.float64),
                np.array([current[name] for name in names], dtype=np.float64),
            )
            for name, statistic, p_value in zip(names, statistics, p_values, strict=True):
                out[name] = (float(statistic), float(p_value))
        for name in self.discrete:
            test = _chi_square(reference[name], current[name])
            if test is not None:
                out[name] = test
        return out


def ks_2samp_asymp(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-sample Kolmogorov-Smirnov tests, one per row of ``a`` and ``b``.

    The same numbers as ``scipy.stats.ks_2samp(a[i], b[i], method="asymp")`` (the statistic
    from the same integer counts divided the same way, the p-value from the same
    ``kstwo.sf``), without its per-call overhead: the rows are sorted and counted at once.
    ``a`` is ``(k, n1)`` and ``b`` is ``(k, n2)``, finite values; returns ``(statistics,
    p_values)``, each of length ``k``.

    ``method="asymp"`` is deliberate: scipy's default (``"auto"``) computes the exact
    distribution up to 10,000 values per sample, which at a window of 500 costs far more
    and gives p-values that differ in the last digits.

    >>> rng = np.random.default_rng(0)
    >>> d, p = ks_2samp_asymp(rng.normal(size=(2, 200)), rng.normal(0.5, size=(2, 300)))
    >>> [bool(x < 1e-3) for x in p]
    [True, True]
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"rows of a and b must pair up, got {a.shape} and {b.shape}")
    n1, n2 = a.shape[1], b.shape[1]
    if min(n1, n2) == 0:
        raise ValueError("a KS test needs values in both samples")
    both = np.concatenate([a, b], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    from_a = order < n1
    count_a = np.cumsum(from_a, axis=1)  # values of a <= ordered[:, j], up to ties
    count_b = np.cumsum(~from_a, axis=1)
    # scipy counts with searchsorted(side="right"): the count at the last of equal values
    last = np.ones_like(from_a)
    last[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    diffs = count_a / n1 - count_b / n2
    max_s = np.where(last, diffs, -np.inf).max(axis=1)
    min_s = np.clip(-np.where(last, diffs, np.inf).min(axis=1), 0, 1)
    statistics = np.where(min_s > max_s, min_s, max_s)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p_values = np.clip(stats.kstwo.sf(statistics, np.round(m * n / (m + n))), 0, 1)
    return statistics, np.atleast_1d(p_values)


def _chi_square(
    ref: collections.Counter[str], cur: collections.Counter[str]
) -> tuple[float, float] | None:
    """Chi-square test of homogeneity of two frequency tables, rare categories pooled."""
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    if n_ref == 0 or n_cur == 0:
        return None
    total = n_ref + n_cur
    rows: dict[str, list[int]] = {}
    for cat in sorted(set(ref) | set(cur)):
        counts = [ref.get(cat, 0), cur.get(cat, 0)]
        expected_min = (counts[0] + counts[1]) * min(n_ref, n_cur) / total
        key = cat if expected_min >= 5 else _OTHER
        row = rows.setdefault(key, [0, 0])
        row[0] += counts[0]
        row[1] += counts[1]
    if len(rows) < 2:
        return None
    statistic = 0.0
    for a, b in rows.values():
        both = a + b
        for observed, n in ((a, n_ref), (b, n_cur)):
            expected = both * n / total
            statistic += (observed - expected) ** 2 / expected
    return statistic, _chi_square_p(len(rows) - 1, statistic)


def _chi_square_p(df: int, statistic: float) -> float:
    """``stats.chi2.sf(statistic, df)`` by its own kernel, without the distribution
    object's per-call argument checks."""
    return float(special.chdtrc(df, statistic))


# -- both, debounced --------------------------------------------------------------------


class DriftMonitor:
    """Concept and data drift for one stream, debounced by ``policy.cooldown`` examples.

    Parameters
    ----------
    policy
        The stream's ``policy.drift``.
    features
        The spec's features (used for data drift).
    seed
        Seed for detectors that sample (KSWIN).
    """

    last_report_at: int | None = None
    """Example count of the last emitted data alarm that does not retrain (a class default,
    so a monitor checkpointed before reports were debounced apart restores)."""

    def __init__(
        self, policy: DriftPolicy, features: Sequence[FeatureSpec], *, seed: int = 42
    ) -> None:
        self.policy = policy
        self.concept = ConceptDetector(policy.detector, policy.params, seed=seed)
        excluded = set(policy.exclude_features)
        tested = [f for f in features if f.name not in excluded]
        self.data = (
            DataDriftDetector(tested, window=policy.data_window, alpha=policy.data_alpha)
            if policy.data_drift and tested
            else None
        )
        self.cooldown = policy.cooldown
        self.examples_seen = 0
        self.last_alarm_at: int | None = None  # of alarms that retrain
        self.last_report_at: int | None = None
        self.suppressed = 0

    def update(self, x: Mapping[str, Any], error: float) -> list[Alarm]:
        """Add one example's features and its prequential error; the alarms to emit."""
        self.examples_seen += 1
        found: list[Alarm] = []
        rise = self.concept.update(error)
        if rise is not None:
            found.append(Alarm("concept", self.concept.name, None, self.examples_seen, rise))
        if self.data is not None:
            shift = self.data.update(x)
            if shift is not None:
                feature, statistics = shift
                test = "KS" if feature in self.data.numbers else "ChiSquare"
                retrain = bool(getattr(self.policy, "data_drift_retrains", True))
                found.append(Alarm("data", test, feature, self.examples_seen, statistics, retrain))
        emitted: list[Alarm] = []
        for alarm in found:
            last = self.last_alarm_at if alarm.retrain else self.last_report_at
            if last is not None and self.examples_seen - last < self.cooldown:
                self.suppressed += 1
                continue
            emitted.append(alarm)
            if alarm.retrain:
                self.last_alarm_at = self.examples_seen
            else:
                self.last_report_at = self.examples_seen
        return emitted
