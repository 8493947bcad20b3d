"""The HTML report: summary definitions, inputs from events, a self-contained page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from schemas.drift import DriftDetected
from schemas.lineage import Lineage, OffsetRange
from schemas.metrics import MetricSnapshot
from schemas.models import AliasMoved, AliasReason, ArtifactRef, ModelVersionPublished
from services.demo.analysis import (
    Curve,
    Marker,
    ModelVersionInfo,
    ReportData,
    build_report,
    summarize,
)
from services.demo.report import render_html, write_report
from services.demo.stream import DriftPoint

ABRUPT = DriftPoint(1000, 1, "abrupt")
GRADUAL = DriftPoint(3000, 400, "gradual")  # transition [2800, 3200)
SHA = "a" * 64


def flags(*parts: tuple[bool | None, int]) -> list[bool | None]:
    out: list[bool | None] = []
    for value, count in parts:
        out += [value] * count
    return out


def test_overall_post_drift_and_recovery() -> None:
    recovers = Curve.from_flags(
        "adaptive",
        flags((True, 1000), (False, 100), (True, 1900), (False, 200), (True, 800)),
        window=100,
        step=50,
    )
    never = Curve.from_flags("static", flags((True, 1000), (False, 3000)), window=100, step=50)
    a, s = summarize([recovers, never], [GRADUAL, ABRUPT])
    assert a.overall == 3700 / 4000
    assert a.post_drift == 2700 / 3000
    # abrupt: the first all-good window after it starts at 1100; the gradual one: the
    # first good window lying after its transition starts at 3200, 200 after its centre
    assert a.recovery == (100, 200)
    assert s.overall == 0.25 and s.post_drift == 0.0
    assert s.recovery == (None, None)


def test_a_model_that_never_drops_recovers_at_once_and_tolerance_counts() -> None:
    steady = Curve.from_flags("steady", flags((True, 4000)), window=100, step=50)
    assert summarize([steady], [ABRUPT, GRADUAL])[0].recovery == (0, 200)
    # 90% after the drift: within 15 points of 100% but not within 5
    dipped = Curve.from_flags(
        "dipped",
        flags((True, 1000), *[(True, 9), (False, 1)] * 300),
        window=100,
        step=50,
    )
    assert summarize([dipped], [ABRUPT], tolerance=0.15)[0].recovery == (0,)
    assert summarize([dipped], [ABRUPT], tolerance=0.05)[0].recovery == (None,)


def test_no_drifts_and_unscored_examples() -> None:
    curve = Curve.from_flags("m", flags((None, 200), (True, 300), (False, 100)), window=50)
    row = summarize([curve], [])[0]
    assert row.overall == 0.75 and row.post_drift is None and row.recovery == ()
    assert curve.rolling[0][0] == 300  # no point before 50 scored examples


def snapshot(count: int, rolling: float, total: float, **extra: object) -> MetricSnapshot:
    return MetricSnapshot.model_validate(
        {
            "stream": "s",
            "model": "s",
            "version": 1,
            "source": "evaluator",
            "role": "champion",
            "values": {"rolling_accuracy": rolling, "accuracy": total},
            "window": 500,
            "example_count": count,
            **extra,
        }
    )


def test_served_curve_from_metric_snapshots() -> None:
    snaps = [snapshot(2000, 0.5, 0.6), snapshot(1000, 0.9, 0.9), snapshot(2000, 0.4, 0.65)]
    curve = Curve.from_snapshots("served", snaps)
    assert curve.role == "served" and curve.window == 500
    assert curve.rolling == ((1000, 0.9), (2000, 0.4))  # sorted, the last of a repeat kept
    assert curve.cumulative == ((1000, 1000, 900), (2000, 2000, 1300))
    row = summarize([curve], [DriftPoint(1000, 1, "abrupt")])[0]
    assert row.overall == 0.65 and row.post_drift == 0.4
    shifted = Curve.from_snapshots("served", snaps, offset=100)
    assert shifted.rolling[0][0] == 1100
    # without cumulative values the accuracies are averaged from the rolling points
    rolling_only = Curve("r", "served", ((500, 1.0), (1500, 0.5), (2500, 0.7)), 500)
    averaged = summarize([rolling_only], [DriftPoint(1000, 1, "abrupt")])[0]
    assert averaged.overall == (1.0 + 0.5 + 0.7) / 3 and averaged.post_drift == 0.6


def published(version: int, parent: int | None) -> ModelVersionPublished:
    return ModelVersionPublished(
        model="s",
        version=version,
        kind="batch",
        flavor="sklearn",
        algorithm="hist_gradient_boosting",
        metrics={"accuracy": 0.93125},
        artifact=ArtifactRef(uri="file:///a", sha256=SHA, signature="ab", key_id="k", size=1),
        spec_sha256=SHA,
        lineage=Lineage(
            ranges=(OffsetRange(topic="driftline.examples.valid", partition=0, start=5, end=905),),
            example_count=900,
        ),
        parent_version=parent,
    )


def report_data() -> ReportData:
    drift = DriftDetected(
        stream="s",
        kind="concept",
        detector="ADWIN",
        topic="driftline.examples.valid",
        partition=0,
        offset=1100,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        example_count=1100,
    )
    move = AliasMoved(
        model="s", alias="champion", from_version=1, to_version=2, reason=AliasReason.PROMOTED
    )
    served = Curve.from_flags(
        "served <champion>", flags((True, 1000), (False, 300), (True, 700)), role="served"
    )
    static = Curve.from_flags("static", flags((None, 200), (True, 800), (False, 1000)))
    return ReportData(
        stream="s",
        size=2000,
        curves=(served, static),
        drifts=(ABRUPT, DriftPoint(1600, 200, "gradual")),
        detected=(Marker.from_drift(drift),),
        swaps=(Marker.from_alias_move(move, 1400),),
        versions=(
            ModelVersionInfo.from_event(published(2, 1), aliases="champion"),
            ModelVersionInfo(1, "online", "HoeffdingAdaptiveTreeClassifier"),
        ),
        metadata=(("seed", "42"), ("duration", "3 min")),
        description="a test stream",
    )


def test_markers_and_versions_from_events() -> None:
    data = report_data()
    assert data.detected[0].index == 1100 and "ADWIN" in data.detected[0].label
    swap = data.swaps[0]
    assert (swap.index, swap.label) == (1400, "v2")
    assert "champion v1 -> v2 (promoted" in swap.detail
    info = data.versions[0]
    assert info.parent == 1 and info.example_count == 900
    assert info.lineage == "driftline.examples.valid[0] [5, 905)"


def test_render_html_is_self_contained_with_chart_markers_and_tables(tmp_path: Path) -> None:
    page = render_html(report_data())
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1
    assert page.count('class="curve"') == 2
    assert page.count('<line class="true-drift"') == 2
    assert page.count('<rect class="true-drift"') == 1  # the gradual drift's transition
    assert page.count('class="detected-drift"') == 1 and page.count('class="swap"') == 1
    for table in ('id="summary"', 'id="versions"', 'id="run"'):
        assert table in page
    assert "served &lt;champion&gt;" in page and "<champion>" not in page
    assert "driftline.examples.valid[0] [5, 905)" in page and "accuracy 0.9313" in page
    assert "not recovered" in page and "3 min" in page
    # nothing fetched from anywhere: no URL, no script, no external stylesheet or font
    assert not re.search(r"https?://|<script|<link|<img|@import|url\(|src=", page)
    path = write_report(tmp_path / "out" / "report.html", report_data())
    assert path.read_text(encoding="utf-8") == page


def test_render_html_without_versions_or_drifts() -> None:
    curve = Curve.from_flags("m", flags((True, 300)), window=100)
    page = render_html(ReportData(stream="s", size=300, curves=(curve,)))
    assert "No model version was recorded" in page and "recovery after" not in page


def served_snapshot(version: int, count: int, rolling: float, total: float) -> MetricSnapshot:
    return MetricSnapshot(
        stream="s",
        model="s",
        version=version,
        source="evaluator",
        role="champion",
        values={"rolling_accuracy": rolling, "accuracy": total},
        window=100,
        example_count=count,
    )


def test_served_curve_lays_version_tracks_end_to_end() -> None:
    snaps = [
        served_snapshot(1, 100, 0.9, 0.9),
        served_snapshot(1, 200, 0.5, 0.7),
        served_snapshot(2, 100, 0.8, 0.8),
        snapshot(150, 0.1, 0.1).model_copy(update={"role": "challenger"}),  # left out
        served_snapshot(3, 100, 1.0, 1.0),
    ]
    curve = Curve.from_served("served", snaps, starts={3: 500})
    assert [x for x, _ in curve.rolling] == [100, 200, 300, 600]
    assert curve.cumulative == ((100, 100, 90), (200, 200, 140), (300, 300, 220), (600, 400, 320))
    assert summarize([curve], [])[0].overall == 0.8
    no_totals = MetricSnapshot.model_validate(
        {**served_snapshot(4, 10, 0.5, 0.5).model_dump(), "values": {"rolling_accuracy": 0.5}}
    )
    assert Curve.from_served("served", [*snaps, no_totals]).cumulative == ()


def test_build_report_from_a_stream_and_baseline_results() -> None:
    from services.demo.baselines import BaselineResult
    from services.demo.stream import DemoStream

    stream = DemoStream.default(quick=True)
    half = stream.size // 2
    static = BaselineResult("static_hgb", "static", (None,) * 2000 + (True,) * 7000, 2.0)
    served = Curve.from_served("served", [served_snapshot(1, half, 0.9, 0.9)])
    data = build_report(
        stream,
        [static],
        served=served,
        drift_events=[report_data_drift()],
        swaps=[(AliasMoved(model="s", alias="champion", to_version=1, reason="cold_start"), 5)],
        versions=[published(2, 1), published(1, None)],
        aliases={2: "champion"},
        metadata=[("duration", "1 min")],
        step=1000,
    )
    assert [c.name for c in data.curves] == ["served", "static"]
    assert data.curves[1].window == stream.config.policy.rolling_window
    assert [x for x, _ in data.curves[1].rolling][:2] == [3000, 4000]
    assert [v.version for v in data.versions] == [1, 2] and data.versions[1].aliases == "champion"
    assert data.drifts == stream.drifts and data.swaps[0].index == 5
    assert ("duration", "1 min") in data.metadata
    assert ("baseline time: static", "2.0 s") in data.metadata
    assert "agrawal" in render_html(data)


def report_data_drift() -> DriftDetected:
    return DriftDetected(
        stream="s",
        kind="concept",
        detector="ADWIN",
        topic="t",
        partition=0,
        offset=3,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        example_count=3100,
    )
