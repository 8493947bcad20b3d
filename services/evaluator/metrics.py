"""The evaluator's metrics, all in one place: ``driftline_evaluator_*`` (the online
followers add their own, :class:`~services.common.online_follower.FollowMetrics`)."""

from __future__ import annotations

from services.common.metrics import Metrics


class EvaluatorMetrics(Metrics):
    """The evaluator's metrics registry and every metric the evaluator updates.

    >>> m = EvaluatorMetrics()
    >>> m.decisions.labels(stream="sea", kind="promote", outcome="moved").inc()
    >>> b"driftline_evaluator_decisions_total" in m.render()
    True
    """

    def __init__(self) -> None:
        super().__init__("evaluator")
        m = self
        self.examples = m.counter(
            "evaluator_examples_total", "Labelled examples by outcome.", ["stream", "outcome"]
        )
        self.skipped = m.counter(
            "evaluator_learned_skips_total",
            "Scores skipped because the version had learned from the example.",
            ["stream"],
        )
        self.values = m.gauge(
            "evaluator_metric", "Live metrics of served versions.", ["stream", "role", "metric"]
        )
        self.served_version = m.gauge(
            "evaluator_version", "Version scored per role.", ["stream", "role"]
        )
        self.decisions = m.counter(
            "evaluator_decisions_total", "Decisions by outcome.", ["stream", "kind", "outcome"]
        )
        self.pairs = m.gauge("evaluator_shadow_pairs", "Shadow-pair join counts.", ["state"])
        self.active_gauge = m.gauge("evaluator_active", "1 when this instance is the active one.")
        self.dead = m.counter("evaluator_dead_letters_total", "Unusable records.", ["reason"])
        self.checkpoints = m.histogram("evaluator_checkpoint_seconds", "Checkpoint time.")
        self.events_refused = m.counter(
            "evaluator_model_events_refused_total",
            "Records of the models topic refused, by kind (unsigned, forged, unparseable...).",
            ["kind"],
        )
        self.load_failures = m.counter(
            "evaluator_load_failures_total", "Versions refused or not loadable.", ["reason"]
        )
