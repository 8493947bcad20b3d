"""The quality benchmark's scoring: served rows, the same rows for the baselines, the score."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import score_run
from bench.quality_streams import CASES, QUICK
from services.demo.checks import LagSample
from services.demo.run import LoopOutcome
from services.demo.state import Answer, DemoState
from services.demo.stream import DemoStream


def outcome_for(source: DemoStream, answer: object, *, late: set[int] = frozenset()) -> LoopOutcome:
    """A loop that learned every row and answered each one with ``answer(i, label)``,
    before its label arrived except for the rows in ``late``."""
    state = DemoState(stream=source.name)
    for i, (ident, _, y) in enumerate(source.identified()):
        state.expect(ident, i)
        state.valid_order.append(ident)
        state.valid_ids.add(ident)
        state.valid_at[ident] = 1000 * i + 500
        at = 1000 * i + (900 if i in late else 100)
        state.answers[ident] = Answer(answer(i, y), 1, at, learned_examples=max(0, i - 3))  # type: ignore[operator]
    samples = [LagSample(1000 * i, i + 1, i) for i in range(source.size)]
    return LoopOutcome(source, state, [], samples, Path("."), Path("r.html"), [], {})


def test_the_quick_suite_is_small_and_covers_every_label_kind() -> None:
    assert len(QUICK) <= 4
    kinds = {CASES[name].stream(seed=1, size=600).config.spec.label.kind for name in QUICK}
    assert kinds == {"class", "number"}
    classes = [
        len(CASES[n].stream(seed=1, size=600).config.spec.label.classes or ()) for n in QUICK
    ]
    assert max(classes) > 2  # a multi-class stream


def test_a_perfect_server_wins_and_late_answers_do_not_count() -> None:
    source = CASES["sea-abrupt"].stream(seed=1, size=600)
    late = set(range(0, 600, 2))
    # right when on time, wrong when late: only the on-time answers are served
    outcome = outcome_for(source, lambda i, y: y if i not in late else (not y), late=late)
    result = score_run(source, outcome, 1.0, seed=1)
    assert result.served_rows == 300
    assert result.served_after == 1.0
    assert result.best_after is not None and result.best_after < 1.0
    assert result.score == pytest.approx(1.0 / result.best_after)
    assert result.staleness == (3.0, 3.0)  # learned i - (i - 3)
    assert result.lag == (1.0, 1.0)
    assert len(result.per_drift) == 2 and result.per_drift[0][0] == 1.0


def test_an_error_metric_is_inverted_so_above_one_still_means_a_win() -> None:
    source = CASES["friedman-drift"].stream(seed=1, size=400)
    outcome = outcome_for(source, lambda i, y: y + 100.0)  # always 100 off
    result = score_run(source, outcome, 1.0, seed=1)
    assert result.metric == "mae" and result.served_after == pytest.approx(100.0)
    assert result.best_after is not None and result.best_after < 100.0
    assert result.score == pytest.approx(result.best_after / 100.0) and result.score < 1.0
    assert "River StandardScaler | LinearRegression" in result.baselines_after
