"""The trainer's per-stream series stay bounded at 1,000 streams."""

from __future__ import annotations

from services.common.metrics import OTHER
from services.trainer.metrics import TrainerMetrics


def scrape_after_runs(metrics: TrainerMetrics, streams: int) -> tuple[int, str]:
    for i in range(streams):
        stream = f"s{i:04d}"
        for _ in range(50 if i % 10 == 0 else 1):  # a tenth of the streams retrain often
            metrics.streams.seen(stream)
            metrics.streams.child(metrics.runs, stream, "promoted").inc()
            metrics.streams.child(metrics.run_seconds, stream).observe(12.0)
            metrics.streams.child(metrics.candidates, stream, "logistic_regression", "lost").inc()
            gauge = metrics.streams.gauge(metrics.window_rows, stream)
            if gauge is not None:
                gauge.set(100)
    text = metrics.metrics.render().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#")), text


def test_a_scrape_at_1000_streams_stays_small() -> None:
    before, _ = scrape_after_runs(TrainerMetrics(streams=None), 1000)
    after, text = scrape_after_runs(TrainerMetrics(streams=100), 1000)
    assert before > 15_000 and after < 2_000
    runs = {
        line.split('stream="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("driftline_trainer_runs_total{")
    }
    assert len(runs) == 101 and runs[OTHER] > 0  # the runs of quiet streams, summed
    assert set(runs) - {OTHER} == {f"s{i:04d}" for i in range(0, 1000, 10)}  # the busy ones
    assert text.count("driftline_trainer_window_rows{") == 100
