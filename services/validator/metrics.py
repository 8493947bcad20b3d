"""The validator's Prometheus metrics, served on ``/metrics``.

Counters (rates come from PromQL, e.g. the missing rate of a feature is
``rate(driftline_validator_feature_missing_total[5m]) /
rate(driftline_validator_feature_values_total[5m])``):

- ``driftline_validator_examples_total{stream, outcome}``: ``valid``, ``rejected``,
  ``redelivered`` (an accepted example re-emitted after a restart or rebalance);
- ``driftline_validator_rejected_total{stream, reason}``: by dead-letter reason code;
- ``driftline_validator_feature_values_total{stream, feature}``: feature values checked;
- ``driftline_validator_feature_missing_total{stream, feature}``: absent or null;
- ``driftline_validator_feature_out_of_range_total{stream, feature}``.

Gauges: ``driftline_validator_spec_version{stream}`` (the version in force) and
``driftline_validator_dedupe_ids`` (accepted ids held). A histogram
``driftline_validator_batch_seconds`` times a batch from judging to broker acks.

``stream`` is ``-`` for unknown or unreadable streams, so that names from the wire
never become label values.

>>> m = ValidatorMetrics()
>>> from services.validator.rules import QualityStats
>>> stats = QualityStats()
>>> stats.outcomes[("sea", "valid")] += 3
>>> m.observe(stats)
>>> b'driftline_validator_examples_total{outcome="valid",stream="sea"} 3.0' in m.metrics.render()
True
"""

from __future__ import annotations

from services.common.metrics import Metrics
from services.validator.rules import QualityStats


class ValidatorMetrics:
    """The validator's metrics on one registry."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics("validator")
        m = self.metrics
        self.examples = m.counter(
            "validator_examples_total",
            "Raw examples handled, by stream and outcome (valid, rejected, redelivered).",
            ["stream", "outcome"],
        )
        self.rejected = m.counter(
            "validator_rejected_total",
            "Rejected raw examples, by stream and dead-letter reason code.",
            ["stream", "reason"],
        )
        self.feature_values = m.counter(
            "validator_feature_values_total",
            "Feature values checked, by stream and feature.",
            ["stream", "feature"],
        )
        self.feature_missing = m.counter(
            "validator_feature_missing_total",
            "Feature values absent or null, by stream and feature.",
            ["stream", "feature"],
        )
        self.feature_out_of_range = m.counter(
            "validator_feature_out_of_range_total",
            "Feature values outside the spec's range, by stream and feature.",
            ["stream", "feature"],
        )
        self.spec_version = m.gauge(
            "validator_spec_version", "Version of the spec in force, by stream.", ["stream"]
        )
        self.dedupe_ids = m.gauge(
            "validator_dedupe_ids", "Accepted example ids held for duplicate detection."
        )
        self._versioned: set[str] = set()
        self.batch_seconds = m.histogram(
            "validator_batch_seconds",
            "Time to judge a batch and get its outputs acknowledged by the broker.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )

    def observe(self, stats: QualityStats) -> None:
        """Add a batch's counts to the counters, then clear them."""
        for (stream, outcome), n in stats.outcomes.items():
            self.examples.labels(stream=stream, outcome=outcome).inc(n)
        for (stream, reason), n in stats.rejected.items():
            self.rejected.labels(stream=stream, reason=reason).inc(n)
        for (stream, feature), n in stats.values.items():
            self.feature_values.labels(stream=stream, feature=feature).inc(n)
        for (stream, feature), n in stats.missing.items():
            self.feature_missing.labels(stream=stream, feature=feature).inc(n)
        for (stream, feature), n in stats.out_of_range.items():
            self.feature_out_of_range.labels(stream=stream, feature=feature).inc(n)
        stats.clear()

    def set_spec_versions(self, versions: dict[str, int]) -> None:
        """Show the version in force of every known stream (and drop forgotten ones)."""
        for stream, version in versions.items():
            self.spec_version.labels(stream=stream).set(version)
        for stream in self._versioned - set(versions):
            self.spec_version.remove(stream)
        self._versioned = set(versions)
