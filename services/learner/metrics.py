"""The learner's metrics, all in one place: ``driftline_learner_*``."""

from __future__ import annotations

from services.common.metrics import Metrics


class LearnerMetrics(Metrics):
    """The learner's metrics registry and every metric the learner updates.

    >>> m = LearnerMetrics()
    >>> m.learned.labels(stream="sea").inc()
    >>> b'driftline_learner_examples_total{stream="sea"} 1.0' in m.render()
    True
    """

    def __init__(self) -> None:
        super().__init__("learner")
        m = self
        self.deferred = m.counter(
            "learner_registry_deferred_total",
            "Registry writes (checkpoints, online versions) put off while it was unreachable.",
            ["what"],
        )
        self.learned = m.counter("learner_examples_total", "Examples learned.", ["stream"])
        self.duplicates = m.counter("learner_duplicates_total", "Duplicates skipped.", ["stream"])
        self.drifts = m.counter("learner_drift_events_total", "Drift events.", ["stream", "kind"])
        self.retrains = m.counter(
            "learner_retrain_requests_total", "Scheduled retrain requests.", ["stream"]
        )
        self.gauges = m.gauge("learner_metric", "Prequential metrics.", ["stream", "metric"])
        self.versions = m.counter("learner_versions_total", "Online versions.", ["stream"])
        self.checkpoints = m.histogram("learner_checkpoint_seconds", "Checkpoint time.")
        self.snapshot_seconds = m.histogram(
            "learner_snapshot_seconds", "Online snapshot time (serialise, sign, store)."
        )
        self.skipped_snapshots = m.counter(
            "learner_snapshots_skipped_total",
            "Online snapshots due but skipped: the last one's cost says wait "
            "(DRIFTLINE_LEARNER_SERIALISE_BUDGET).",
            ["stream"],
        )
        self.snapshot_bytes = m.gauge(
            "learner_snapshot_bytes", "Size of the stream's last online snapshot.", ["stream"]
        )
        self.dead = m.counter("learner_dead_letters_total", "Unusable records.", ["reason"])
        self.stream_examples = m.gauge(
            "learner_stream_examples",
            "Distinct examples the stream's learner has learned, across restarts (its "
            "checkpointed count; learner_examples_total counts this process's only).",
            ["stream"],
        )
        self.config_rejects = m.counter(
            "learner_stream_config_rejects_total",
            "Records of the streams topic that were not applied.",
            ["reason"],
        )
