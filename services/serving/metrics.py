"""Serving's Prometheus metrics, in one place (the HTTP app, the Kafka path and the
subscriber's callbacks all count here)."""

from __future__ import annotations

from services.common.metrics import Metrics
from services.common.subscriber import REFUSALS

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ServingMetrics:
    """Every serving metric, named ``driftline_serving_*``.

    >>> m = ServingMetrics(Metrics("serving"))
    >>> m.requests.labels(model="sea", version="3", outcome="ok").inc()
    >>> b'driftline_serving_requests_total{model="sea",outcome="ok",version="3"} 1.0' in (
    ...     m.metrics.render())
    True
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        m = metrics
        self.requests = m.counter(
            "serving_requests_total",
            "Prediction requests (HTTP and Kafka) by model, version and outcome.",
            ["model", "version", "outcome"],
        )
        self.rows = m.counter("serving_rows_total", "Rows predicted.", ["model", "path"])
        self.latency = m.histogram(
            "serving_request_seconds",
            "Prediction latency, parse to answer.",
            ["model", "path"],
            buckets=LATENCY_BUCKETS,
        )
        self.model_version = m.gauge(
            "serving_model_version", "The version loaded per model and alias.", ["model", "alias"]
        )
        self.swaps = m.counter(
            "serving_swaps_total", "Model versions swapped in.", ["model", "alias"]
        )
        self.load_failures = m.counter(
            "serving_load_failures_total", "Versions refused or not loadable.", ["model", "reason"]
        )
        self.events_refused = m.counter(
            "serving_model_events_refused_total",
            "Records of the models topic refused, by kind (unsigned, forged, unparseable...).",
            ["kind"],
        )
        for kind in REFUSALS:
            self.events_refused.labels(kind=kind)
        self.load_seconds = m.histogram(
            "serving_load_seconds", "Fetch + verify + warm-up time of a version.", ["model"]
        )
        self.shadow_pairs = m.counter(
            "serving_shadow_pairs_total", "Shadow pairs sent.", ["model", "outcome"]
        )
        self.dead = m.counter(
            "serving_dead_letters_total", "Prediction requests dead-lettered.", ["reason"]
        )
        self.acks = m.counter("serving_acks_total", "Acknowledgements sent.", ["kind"])
        self.out_of_spec = m.counter(
            "serving_out_of_spec_total",
            "Input values outside the stream's spec (range or categories), per feature.",
            ["model", "feature"],
        )
