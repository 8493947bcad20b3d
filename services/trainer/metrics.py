"""The trainer's metrics, all in one place: ``driftline_trainer_*``."""

from __future__ import annotations

from services.common.metrics import BoundedStreams, Metrics


class TrainerMetrics:
    """``driftline_trainer_*`` metrics; the per-stream ones for the ``streams`` streams
    with the most runs (the others under ``stream="(other)"``; None: every stream)."""

    def __init__(self, streams: int | None = 100) -> None:
        self.metrics = Metrics("trainer")
        self.streams = BoundedStreams(streams)
        m = self.metrics
        self.runs = m.counter(
            "trainer_runs_total", "Trigger events by outcome.", ["stream", "outcome"]
        )
        self.run_seconds = m.histogram(
            "trainer_run_seconds",
            "Wall time of a run, trigger to decision.",
            ["stream"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
        )
        self.phase_seconds = m.histogram(
            "trainer_phase_seconds",
            "Time per phase of a run (replay, decode, fit, score, register, gate).",
            ["phase"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )
        self.candidates = m.counter(
            "trainer_candidates_total",
            "Candidates trained, by whether the gate promoted them.",
            ["stream", "candidate", "result"],
        )
        self.window_rows = m.gauge("trainer_window_rows", "Rows in the last window.", ["stream"])
        self.skipped_rows = m.counter(
            "trainer_skipped_rows_total",
            "Records of a replayed window left out: they break the event contract or the "
            "stream's spec.",
            ["stream", "reason"],
        )
        self.dead = m.counter(
            "trainer_dead_letters_total", "Unusable drift-topic records.", ["reason"]
        )
        self.config_rejects = m.counter(
            "trainer_stream_config_rejects_total",
            "Records of the streams topic that were not applied.",
            ["reason"],
        )
        self.in_progress = m.gauge("trainer_runs_in_progress", "Runs under way.")
