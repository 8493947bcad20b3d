"""The registry service's metrics, all in one place: ``driftline_registry_*``.

One :class:`~services.common.metrics.Metrics` registry per process, shared by the HTTP
API, the outbox relay and the warden; each takes its own group of metrics from it.

>>> m = Metrics("registry")
>>> api, relay, warden = ApiMetrics(m), RelayMetrics(m), WardenMetrics(m)
>>> relay.relayed.inc(2)
>>> b"driftline_registry_outbox_relayed_total 2.0" in m.render()
True
"""

from __future__ import annotations

from services.common.metrics import Metrics


class ApiMetrics:
    """The HTTP API's: requests, latency, refusals and the outbox backlog."""

    def __init__(self, metrics: Metrics) -> None:
        self.requests = metrics.counter(
            "registry_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
        )
        self.latency = metrics.histogram(
            "registry_http_request_seconds", "HTTP request latency.", ["method", "route"]
        )
        self.refusals = metrics.counter(
            "registry_http_refusals_total", "HTTP requests refused, by reason.", ["route", "reason"]
        )
        self.backlog = metrics.gauge(
            "registry_outbox_backlog", "Registry events committed but not yet relayed to Kafka."
        )


class RelayMetrics:
    """The outbox relay's: events published and failed attempts."""

    def __init__(self, metrics: Metrics) -> None:
        self.relayed = metrics.counter(
            "registry_outbox_relayed_total", "Outbox events published to Kafka."
        )
        self.failures = metrics.counter(
            "registry_outbox_relay_failures_total", "Outbox relay attempts that failed."
        )


class WardenMetrics:
    """The warden's: unusable records and current values published again."""

    def __init__(self, metrics: Metrics) -> None:
        self.dead = metrics.counter(
            "registry_dead_letters_total", "Unusable records on models and streams.", ["reason"]
        )
        self.reasserted = metrics.counter(
            "registry_reasserted_total", "Current values published again, by topic.", ["topic"]
        )
