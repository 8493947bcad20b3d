"""The demo's end-of-run checks: the loop is required only on a stream known to drift."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import DriftlineSettings
from services.demo.checks import end_checks as _checks
from services.demo.state import DemoState


def quiet_stream(tmp_path: Path) -> tuple[DriftlineSettings, DemoState]:
    """Ten examples produced and validated, nothing else happened (no drift, no run)."""
    settings = DriftlineSettings.load(env={}, data_dir=tmp_path)
    state = DemoState(stream="phishing")
    for i in range(10):
        state.expect(str(i), i)
        state.valid_ids.add(str(i))
    return settings, state


def test_a_stream_with_known_drift_needs_the_whole_loop(tmp_path: Path) -> None:
    settings, state = quiet_stream(tmp_path)
    checks = {c.name: c for c in _checks(settings, state, 10.0, expect_drift=True)}
    failed = {name for name, c in checks.items() if not c.ok}
    assert failed == {"drift detected", "training run", "promotion", "swap seen by serving"}


def test_a_stream_without_known_drift_reports_the_loop_but_needs_only_no_loss(
    tmp_path: Path,
) -> None:
    settings, state = quiet_stream(tmp_path)
    checks = _checks(settings, state, 10.0, expect_drift=False)
    assert all(c.ok for c in checks)
    assert "not required" in next(c for c in checks if c.name == "drift detected").detail
    lossy = _checks(settings, state, 9.0, expect_drift=False)  # one example not learned
    assert [c.name for c in lossy if not c.ok] == ["learned = valid"]


def test_a_learner_lagging_the_replay_is_a_warning_live_and_at_the_end() -> None:
    from rich.console import Console

    from services.demo import live
    from services.demo.checks import LagSample, lag_check

    def shown(lag: int) -> str:
        console = Console(width=120, record=True)
        console.print(
            live.render(
                DemoState(stream="s"), [], produced=10, total=10, elapsed_s=1.0, phase="p", lag=lag
            )
        )
        return console.export_text()

    assert "WARNING" in shown(250) and "WARNING" not in shown(50)
    kept_up = lag_check([LagSample(0, 100, 60), LagSample(1, 200, 150)])
    behind = lag_check([LagSample(0, 100, 60), LagSample(1, 400, 150)])
    assert kept_up.ok and not kept_up.required
    assert not behind.ok and not behind.required and "max 250" in behind.detail
