"""Drift detectors: direction, params, data drift per feature, debouncing, pickling."""

from __future__ import annotations

import pickle
import random
from typing import Any

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from schemas.streams import DriftPolicy, FeatureSpec
from services.learner.drift import (
    ConceptDetector,
    DataDriftDetector,
    DriftMonitor,
    _chi_square,
    _chi_square_p,
    ks_2samp_asymp,
)
from services.learner.errors import DriftPolicyError

FEATURES = (
    FeatureSpec(name="a", type="number"),
    FeatureSpec(name="b", type="number"),
    FeatureSpec(name="c", type="category", categories=("x", "y", "z")),
    FeatureSpec(name="f", type="bool"),
)


def errors(seed: int, rates: list[tuple[int, float]]) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for n, p in rates for _ in range(n)]


def example(rng: random.Random, shift: float = 0.0, cat_p: float = 0.2) -> dict[str, Any]:
    return {
        "a": rng.gauss(shift, 1.0),
        "b": rng.random(),
        "c": "x" if rng.random() < cat_p else rng.choice(["y", "z"]),
        "f": rng.random() < 0.5,
    }


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ADWIN", {}),
        ("PageHinkley", {"threshold": 20}),
        ("KSWIN", {"alpha": 0.0001, "window_size": 300, "stat_size": 100}),
    ],
)
def test_each_detector_fires_on_a_rise_and_not_on_a_fall(name: str, params: dict[str, Any]) -> None:
    for seed in range(3):
        rise = ConceptDetector(name, params, seed=seed)
        fired = [
            i for i, e in enumerate(errors(seed, [(2000, 0.1), (1000, 0.5)])) if rise.update(e)
        ]
        assert fired and 2000 <= fired[0] < 2400, (name, seed, fired)
        fall = ConceptDetector(name, params, seed=seed)
        fired = [
            i for i, e in enumerate(errors(seed, [(2000, 0.5), (2000, 0.1)])) if fall.update(e)
        ]
        assert not [i for i in fired if i >= 2000], (name, seed, fired)


def test_a_rise_carries_the_error_before_and_after() -> None:
    det = ConceptDetector()
    found = [s for e in errors(0, [(2000, 0.1), (500, 0.6)]) if (s := det.update(e))]
    assert found[0]["error_after"] > found[0]["error_before"]


@pytest.mark.parametrize(
    ("name", "params", "named"),
    [
        ("ADWIN", {"delta": 0.01, "dleta": 1}, "no param 'dleta'"),
        ("KSWIN", {"window": [1, 2]}, "no param 'window'"),
        ("PageHinkley", {"mode": "both"}, "mode must be 'up'"),
        ("ADWIN", {"delta": "small"}, "'delta' must be a number"),
        ("DDM", {}, "'DDM' is not one of"),
    ],
)
def test_bad_detector_params_are_refused_by_name(
    name: str, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(DriftPolicyError, match=named):
        ConceptDetector(name, params)


def test_data_drift_names_the_shifted_feature_and_refreshes_its_reference() -> None:
    rng = random.Random(1)
    det = DataDriftDetector(FEATURES, window=500, alpha=1e-4)
    found = []
    for i in range(6000):
        hit = det.update(example(rng, shift=1.0 if i >= 3000 else 0.0))
        if hit:
            found.append((i, *hit))
    assert len(found) == 1, found
    index, feature, statistics = found[0]
    assert feature == "a" and 3000 <= index < 4000
    assert statistics["p_value"] < statistics["threshold"] == 1e-4 / 4


def test_data_drift_on_category_frequencies() -> None:
    rng = random.Random(2)
    det = DataDriftDetector(FEATURES, window=500, alpha=1e-4)
    found = [
        (i, h[0])
        for i in range(4000)
        if (h := det.update(example(rng, cat_p=0.6 if i >= 2000 else 0.2)))
    ]
    assert [f for _, f in found] == ["c"] and 2000 <= found[0][0] < 3000


def test_missing_values_are_a_category_and_skipped_for_numbers() -> None:
    rng = random.Random(3)
    det = DataDriftDetector(FEATURES, window=200, alpha=1e-4)
    found = []
    for i in range(2000):
        x = example(rng)
        if i >= 1000 and rng.random() < 0.5:
            x["c"] = None
            x["a"] = None
        if h := det.update(x):
            found.append(h[0])
    assert found == ["c"]


def test_one_change_gives_one_alarm_within_the_cooldown() -> None:
    rng = random.Random(4)
    policy = DriftPolicy(cooldown=2000, data_window=200, data_drift_retrains=True)
    monitor = DriftMonitor(policy, FEATURES)
    alarms = []
    errs = errors(4, [(3000, 0.1), (3000, 0.5)])
    for i, e in enumerate(errs):
        # the features shift at the same time as the concept: still one event
        alarms += monitor.update(example(rng, shift=2.0 if i >= 3000 else 0.0), e)
    assert len(alarms) == 1, alarms
    assert alarms[0].example_count > 3000
    assert monitor.suppressed >= 1

    # by default data drift is only reported: still one retrain, and one report at most
    reporting = DriftMonitor(DriftPolicy(cooldown=2000, data_window=200), FEATURES)
    rng = random.Random(4)
    found = [
        a
        for i, e in enumerate(errs)
        for a in reporting.update(example(rng, shift=2.0 if i >= 3000 else 0.0), e)
    ]
    assert len([a for a in found if a.retrain]) == 1, found
    assert len([a for a in found if not a.retrain]) <= 1, found

    loose = DriftMonitor(DriftPolicy(cooldown=0, data_window=200), FEATURES)
    rng = random.Random(4)
    found = [
        a
        for i, e in enumerate(errs)
        for a in loose.update(example(rng, shift=2.0 if i >= 3000 else 0.0), e)
    ]
    assert {a.kind for a in found} == {"concept", "data"}


def test_the_monitor_is_picklable_and_deterministic() -> None:
    def run(monitor: DriftMonitor, start: int, stop: int) -> list[Any]:
        rng = random.Random(5)
        xs = [example(rng, shift=1.0 if i >= 2500 else 0.0) for i in range(5000)]
        errs = errors(5, [(2500, 0.1), (2500, 0.4)])
        return [a for i in range(start, stop) for a in monitor.update(xs[i], errs[i])]

    policy = DriftPolicy(
        detector="KSWIN",
        params={"alpha": 0.0001, "window_size": 300, "stat_size": 100},
        cooldown=100,
        data_window=200,
    )
    whole = DriftMonitor(policy, FEATURES, seed=3)
    expected = run(whole, 0, 5000)
    first = DriftMonitor(policy, FEATURES, seed=3)
    got = run(first, 0, 2600)
    resumed = pickle.loads(pickle.dumps(first))  # noqa: S301 - our own bytes
    got += run(resumed, 2600, 5000)
    assert got == expected and expected


# -- the vectorised KS test against scipy ----------------------------------------------


def test_scipy_would_pick_the_exact_method_for_our_windows() -> None:
    """Why ``method="asymp"`` is named: scipy's default computes the exact distribution up
    to 10,000 values per sample (every data window), which gives other p-values."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(0.1, size=500)
    assert stats.ks_2samp(a, b).pvalue != stats.ks_2samp(a, b, method="asymp").pvalue


@pytest.mark.parametrize("block", range(4))
def test_vectorised_ks_gives_scipys_numbers_exactly(block: int) -> None:
    """Over 400 seeds: sizes from 20 to 1,200, equal and unequal, ties, shifts, several
    rows at once; statistic and p-value equal to the last bit."""
    for seed in range(block * 100, block * 100 + 100):
        rng = np.random.default_rng(seed)
        rows, n1, n2 = int(rng.integers(1, 6)), int(rng.integers(20, 1200)), 0
        n2 = n1 if seed % 4 == 0 else int(rng.integers(20, 1200))
        a = rng.normal(size=(rows, n1))
        b = rng.normal(rng.uniform(0, 0.4), rng.uniform(0.8, 1.3), size=(rows, n2))
        if seed % 3 == 0:  # ties, within and across the samples
            a, b = np.round(a, 1), np.round(b, 1)
        statistics, p_values = ks_2samp_asymp(a, b)
        for i in range(rows):
            expected = stats.ks_2samp(a[i], b[i], method="asymp")
            assert float(statistics[i]) == float(expected.statistic), (seed, i)
            assert float(p_values[i]) == float(expected.pvalue), (seed, i)


def test_the_detectors_tests_equal_scipys_per_feature() -> None:
    """The detector's whole table (KS on numbers with missing values, chi-square on the
    rest) against a per-feature scipy reference, over many seeds."""
    features = (
        *FEATURES,
        FeatureSpec(name="d", type="number", nullable=True),
        FeatureSpec(name="e", type="number"),
    )
    for seed in range(60):
        rng = random.Random(seed)
        det = DataDriftDetector(features, window=300, alpha=0.01)
        windows = []
        for w in range(2):
            current = det._empty()
            for _ in range(300):
                x = example(rng, shift=0.3 * w * (seed % 2))
                x["d"] = None if rng.random() < 0.2 else round(rng.gauss(0, 1), 1)
                x["e"] = rng.expovariate(1.0 + 0.2 * w)
                for name in det.numbers:
                    if x[name] is not None:
                        current[name].append(float(x[name]))
                for name in det.discrete:
                    current[name][str(x[name])] += 1
            windows.append(current)
        reference, current = windows
        got = det._tests(reference, current)
        expected: dict[str, tuple[float, float]] = {}
        for name in det.numbers:
            res = stats.ks_2samp(
                np.asarray(reference[name]), np.asarray(current[name]), method="asymp"
            )
            expected[name] = (float(res.statistic), float(res.pvalue))
        for name in det.discrete:
            chi = _chi_square(reference[name], current[name])
            assert chi is not None
            expected[name] = chi
        assert got == expected, seed


def test_the_chi_square_p_value_is_scipys() -> None:
    """``special.chdtrc`` is the kernel behind ``stats.chi2.sf``: the same numbers."""
    rng = np.random.default_rng(7)
    for df in range(1, 60):
        for statistic in (*rng.uniform(0, 3 * df, 40), 0.0, 1e-9, 500.0):
            assert _chi_square_p(df, float(statistic)) == float(stats.chi2.sf(statistic, df))


def test_the_vectorised_ks_refuses_rows_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="pair up"):
        ks_2samp_asymp(np.zeros((2, 30)), np.zeros((3, 30)))


def test_a_window_keeps_finite_numbers_only_as_floats() -> None:
    det = DataDriftDetector([FeatureSpec(name="a", type="number")], window=100, alpha=0.01)
    values: list[Any] = [1.5, 2, True, None, float("nan"), float("inf"), -0.0, "3", 1e308, -7]
    for value in values:
        det.update({"a": value})
    kept = det._current["a"]
    assert kept == [1.5, 2.0, -0.0, 1e308, -7.0]
    assert all(type(v) is float for v in kept)
