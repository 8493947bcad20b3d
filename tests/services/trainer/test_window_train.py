"""Window selection, lineage and the candidates' search, on real data."""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import timedelta

import numpy as np
import pytest

from services.common.predictor import Vectorizer
from services.trainer import train, window
from services.trainer.run_window import labels
from services.trainer.window import Row, WindowTooSmall
from tests.services.trainer.support import T0, config, data, rows


def test_last_w_is_by_event_time_across_partitions_and_reselects_from_its_lineage() -> None:
    pairs = data(600, before=600)
    # two partitions whose event times interleave, plus a redelivered duplicate
    mixed = [
        Row(i % 2, i // 2, str(i), x, y, T0 + timedelta(seconds=i))
        for i, (x, y) in enumerate(pairs)
    ]
    mixed.append(Row(1, 999, "598", pairs[598][0], pairs[598][1], T0 + timedelta(seconds=598)))
    chosen = window.select(window.dedupe(mixed), count=200)
    assert [r.example_id for r in chosen] == [str(i) for i in range(400, 600)]
    lineage = window.lineage(chosen, "valid")
    assert [(r.partition, r.start, r.end) for r in lineage.ranges] == [(0, 200, 300), (1, 200, 300)]
    # re-reading exactly the ranges and applying the rule again gives the same rows
    again = [
        r
        for r in mixed
        for g in lineage.ranges
        if r.partition == g.partition and g.start <= r.offset < g.end
    ]
    redone = window.select(window.dedupe(again), count=lineage.example_count)
    assert window.digest(redone) == window.digest(chosen)


def test_since_drift_takes_every_row_after_the_drift_with_a_minimum_and_a_cap() -> None:
    rs = rows("s", data(1000, before=1000))
    drift_at = T0 + timedelta(seconds=900)
    assert (
        window.window_size(rs, mode="since_drift", window=500, min_size=50, drift_time=drift_at)
        == 100
    )
    assert (
        window.window_size(rs, mode="since_drift", window=500, min_size=300, drift_time=drift_at)
        == 300
    )
    # a run long after the drift: the newest `window` rows, all after the drift
    assert (
        window.window_size(rs, mode="since_drift", window=60, min_size=50, drift_time=drift_at)
        == 60
    )
    with pytest.raises(WindowTooSmall):
        window.window_size(rs[:20], mode="last", window=500, min_size=50, drift_time=None)


def test_split_holds_out_the_most_recent() -> None:
    rs = rows("s", data(100, before=100))
    train_rows, holdout = window.split(list(reversed(rs)), holdout_fraction=0.2)
    assert len(holdout) == 20
    assert max(r.event_time for r in train_rows) < min(r.event_time for r in holdout)


def _valid(stream: str = "s", **change: object) -> bytes:
    doc = {
        "stream": stream,
        "example_id": "1",
        "features": {"salary": 1.0, "group": "low"},
        "label": 1,
        "event_time": "2026-01-01T00:00:00Z",
        **change,
    }
    return json.dumps(doc).encode()


def test_parse_leaves_other_streams_and_skips_what_breaks_the_contract_or_spec() -> None:
    spec = config().spec.model_copy(
        update={"features": [f for f in config().spec.features if f.name in ("salary", "group")]}
    )
    row = window.parse(0, 1, _valid(), "s", spec)
    assert isinstance(row, Row) and row.features == {"salary": 1.0, "group": "low"}
    assert window.parse(0, 1, _valid("other"), "s", spec) is None

    def reason(value: bytes | None) -> str:
        skipped = window.parse(3, 9, value, "s", spec)
        assert isinstance(skipped, window.Skipped), value
        assert (skipped.partition, skipped.offset) == (3, 9)
        return skipped.reason.value

    assert reason(b"not json") == "unparseable"
    assert reason(None) == "unparseable"
    assert reason(b'{"stream": "s", "example_id": "1"}') == "contract_violation"
    assert reason(_valid(features=[1, 2])) == "contract_violation"
    assert reason(_valid(event_time="2026-01-01T00:00:00")) == "contract_violation"  # naive
    assert reason(_valid(schema_version=99)) == "unsupported_schema_version"
    assert reason(_valid(label=7)) == "bad_label"
    assert reason(_valid(features={"salary": "1.0", "group": "low"})) == "wrong_type"
    assert reason(_valid(features={"salary": 1.0, "group": "low", "x": 1})) == "unexpected_feature"
    assert reason(_valid(features={"salary": 1e400, "group": "low"})) == "non_finite"
    assert reason(_valid(features={"salary": 1.0, "group": "mid"})) == "unknown_category"


def _xy(n: int) -> tuple[np.ndarray, np.ndarray]:
    rs = rows("s", data(n, before=n))
    return Vectorizer(config().spec.features).matrix([r.features for r in rs]), labels(rs)


def test_search_keeps_the_budget_and_records_its_trials() -> None:
    X, y = _xy(1000)
    found = train.search("random_forest", "class", X, y, metric="accuracy", seed=1, budget_s=1e-6)
    assert found.budget_hit
    assert len(found.trials) == 1  # the first fit always completes
    full = train.search(
        "hist_gradient_boosting", "class", X, y, metric="accuracy", seed=1, budget_s=60
    )
    assert not full.budget_hit
    assert len({tuple(sorted(t.params.items())) for t in full.trials}) == 6
    assert max(t.rows for t in full.trials) > min(t.rows for t in full.trials)  # halving


@pytest.mark.parametrize("name", sorted(train.GRIDS))
def test_a_final_fit_is_deterministic(name: str) -> None:
    X, y = _xy(1500)
    params = train.configurations(name, 3)[0]
    a = train.fit_final(name, "class", params, X, y, seed=3)
    b = train.fit_final(name, "class", params, X, y, seed=3)
    assert hashlib.sha256(pickle.dumps(a)).digest() == hashlib.sha256(pickle.dumps(b)).digest()


def test_regression_candidates_and_metrics() -> None:
    X, _ = _xy(500)
    y = X[:, 0] * 2.0 + 1.0
    assert not train.supports("logistic_regression", "number")
    model = train.fit_final("ridge", "number", {"alpha": 1.0}, X, y, seed=0)
    metrics = train.model_metrics("number", model, X, y)
    assert metrics["r2"] > 0.99 and set(metrics) == {"mae", "rmse", "r2"}
    with pytest.raises(train.Unsupported):
        train.build("logistic_regression", "number", {}, 0)
