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

Gauges: ``driftline_validator_spec_version{stream}`` (the version in force),
``driftline_validator_streams`` (streams with a config in force) and
``driftline_validator_dedupe_ids`` (accepted ids held). A histogram
``driftline_validator_batch_seconds`` times a batch from judging to broker acks.

``stream`` is ``-`` for unknown or unreadable streams, so that names from the wire
never become label values.

**Bounded series.** A scrape stays small however many streams there are: the
``metrics_streams`` busiest streams (by examples; ``DRIFTLINE_VALIDATOR_METRICS_STREAMS``,
default 100) have series of their own and the others are summed under
``stream="(other)"``; per-feature series exist only for the streams that
``feature_metrics`` selects (``DRIFTLINE_VALIDATOR_FEATURE_METRICS``: ``all``, ``none`` or
``top-N``, default ``top-10``), every other stream's features summed under
``feature="(all)"``. Every count lands in exactly one series, so rates summed over
streams and features stay exact. A stream that loses its place (another became more than
twice as busy) has its series removed and counts under ``(other)`` from then on (and
likewise for per-feature series and ``(all)``).

>>> m = ValidatorMetrics(settings=ValidatorSettings.load(env={}))
>>> from services.validator.rules import QualityStats
>>> stats = QualityStats()
>>> stats.outcomes[("sea", "valid")] += 3
>>> m.observe(stats)
>>> b'driftline_validator_examples_total{outcome="valid",stream="sea"} 3.0' in m.metrics.render()
True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from services.common.metrics import OTHER, Busiest, Metrics
from services.validator.rules import NO_STREAM, QualityStats
from services.validator.settings import ValidatorSettings

# The feature label of a stream's features summed, for streams without per-feature series.
ALL_FEATURES = "(all)"


class ValidatorMetrics:
    """The validator's metrics on one registry, with bounded stream and feature labels.

    ``settings`` choose the bounds (``metrics_streams``, ``feature_metrics``); default:
    the ``DRIFTLINE_VALIDATOR_*`` environment.
    """

    def __init__(
        self, metrics: Metrics | None = None, *, settings: ValidatorSettings | None = None
    ) -> None:
        settings = settings or ValidatorSettings.load()
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
        self.streams = m.gauge("validator_streams", "Streams with a config in force.")
        self.dedupe_ids = m.gauge(
            "validator_dedupe_ids", "Accepted example ids held for duplicate detection."
        )
        self.batch_seconds = m.histogram(
            "validator_batch_seconds",
            "Time to judge a batch and get its outputs acknowledged by the broker.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self._busiest = Busiest(settings.metrics_streams or None)
        self._featured = Busiest(settings.feature_streams())
        self._versions: dict[str, int] = {}
        self._versioned: set[str] = set()
        # the label values of every series made, by the stream they belong to
        self._series: dict[str, set[tuple[Any, tuple[str, ...]]]] = {}

    def observe(self, stats: QualityStats) -> None:
        """Add a batch's counts to the counters, then clear them."""
        load: Counter[str] = Counter()
        for (stream, _outcome), n in stats.outcomes.items():
            load[stream] += n
        for counter in (stats.rejected, stats.values, stats.missing, stats.out_of_range):
            for stream, _ in counter:
                load[stream] += 0  # asks for a place while there is room
        load.pop(NO_STREAM, None)  # always its own series, never counted against the limit
        self._rank(load)
        self._add(self.examples, stats.outcomes, self._by_stream)
        self._add(self.rejected, stats.rejected, self._by_stream)
        self._add(self.feature_values, stats.values, self._by_feature)
        self._add(self.feature_missing, stats.missing, self._by_feature)
        self._add(self.feature_out_of_range, stats.out_of_range, self._by_feature)
        stats.clear()

    def set_spec_versions(self, versions: dict[str, int]) -> None:
        """Show the version in force of every known stream that has series of its own
        (and drop forgotten ones); their number in ``validator_streams``."""
        for stream in set(self._versions) - set(versions):
            self._drop(stream)
            self._busiest.forget(stream)
            self._featured.forget(stream)
        self._versions = dict(versions)
        self.streams.set(len(versions))
        self._rank(dict.fromkeys(versions, 0))
        self._sync_versions()

    # -- internals ----------------------------------------------------------------

    def _rank(self, load: dict[str, int]) -> None:
        """Update the selections with a batch's load; drop the series of streams that lost
        their place, and show the versions of the streams selected now."""
        had = len(self._busiest.selected)
        dropped = self._busiest.update(load)
        for stream in dropped:
            self._drop(stream)
            self._featured.discard(stream)
        for stream in self._featured.update(load):
            self._drop(stream, features_only=True)
        if dropped or len(self._busiest.selected) != had:
            self._sync_versions()

    def _by_stream(self, stream: str, other: str) -> tuple[str, str]:
        """The labels of a ``(stream, outcome or reason)`` count."""
        return (stream if stream == NO_STREAM else self._busiest.label(stream)), other

    def _by_feature(self, stream: str, feature: str) -> tuple[str, str]:
        """The labels of a ``(stream, feature)`` count."""
        label, _ = self._by_stream(stream, feature)
        if label == OTHER or (stream != NO_STREAM and stream not in self._featured.selected):
            return label, ALL_FEATURES
        return label, feature

    def _add(
        self,
        metric: Any,
        counts: Counter[tuple[str, str]],
        labels: Callable[[str, str], tuple[str, str]],
    ) -> None:
        """Add counts to ``metric``, summed by their bounded labels."""
        summed: Counter[tuple[str, str]] = Counter()
        for (stream, other), n in counts.items():
            summed[labels(stream, other)] += n
        for values, n in summed.items():
            metric.labels(*values).inc(n)
            if values[0] != OTHER:
                self._series.setdefault(values[0], set()).add((metric, values))

    def _drop(self, stream: str, *, features_only: bool = False) -> None:
        """Remove the series of a stream that lost its place (or only its per-feature ones)."""
        features = (self.feature_values, self.feature_missing, self.feature_out_of_range)
        made = self._series.get(stream, set())
        for metric, values in list(made):
            if features_only and (metric not in features or values[1] == ALL_FEATURES):
                continue
            metric.remove(*values)
            made.discard((metric, values))
        if not features_only:
            self._series.pop(stream, None)

    def _sync_versions(self) -> None:
        shown = {s for s in self._versions if s in self._busiest.selected}
        for stream in self._versioned - shown:
            self.spec_version.remove(stream)
        for stream in shown:
            self.spec_version.labels(stream=stream).set(self._versions[stream])
        self._versioned = shown
