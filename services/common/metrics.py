"""Prometheus metrics: one registry per process, every name prefixed ``driftline_``.

>>> m = Metrics("validator")
>>> c = m.counter("examples_total", "Examples handled.", ["stream", "outcome"])
>>> c.labels(stream="sea", outcome="valid").inc()
>>> b"driftline_examples_total" in m.render()
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)


class Metrics:
    """A service's metrics registry with factories and an HTTP endpoint."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self._server: Any = None
        self.counter("service_info", "Always 1; labels name the service.", ["service"]).labels(
            service=service
        ).inc(0)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter called ``driftline_<name>``."""
        return Counter(f"driftline_{name}", doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge called ``driftline_<name>``."""
        return Gauge(f"driftline_{name}", doc, labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = ()
    ) -> Histogram:
        """A histogram called ``driftline_<name>`` (default latency buckets)."""
        kwargs: dict[str, Any] = {"buckets": buckets} if buckets else {}
        return Histogram(f"driftline_{name}", doc, labels, registry=self.registry, **kwargs)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return bytes(generate_latest(self.registry))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        """Stop the HTTP endpoint, if one was started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
