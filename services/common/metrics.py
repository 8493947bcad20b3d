"""Prometheus metrics: one registry per process, every name prefixed ``driftline_``.

No ``*_created`` series: Prometheus stores each as a series of its own, doubling every
counter's, and rates do not need them (:class:`Metrics` turns them off for the process).

>>> m = Metrics("validator")
>>> c = m.counter("examples_total", "Examples handled.", ["stream", "outcome"])
>>> c.labels(stream="sea", outcome="valid").inc()
>>> b"driftline_examples_total" in m.render()
True
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)


class Metrics:
    """A service's metrics registry with factories and an HTTP endpoint."""

    def __init__(self, service: str) -> None:
        self.service = service
        disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide, see above
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


# The label value shared by every key beyond a :class:`Busiest` selection. No stream name
# can take it (stream names are letters, digits, '.', '_' and '-').
OTHER = "(other)"


class Busiest:
    """Which keys (streams) of many get series of their own: at most ``limit``, the
    busiest by their count so far; the others share :data:`OTHER`. Bounds a label's values.

    A key gets a place while there is room; once the selection is full, a key takes the
    place of the least busy selected one when its count is more than twice that one's (so
    two keys of about the same load do not swap back and forth). ``limit`` None selects
    every key, 0 none. :meth:`update` returns the keys that lost their place, whose series
    the owner removes.

    >>> b = Busiest(2)
    >>> b.update({"a": 5, "b": 1, "c": 1})
    []
    >>> [b.label(k) for k in "abc"]
    ['a', 'b', '(other)']
    >>> b.update({"c": 9})
    ['b']
    >>> sorted(b.selected), b.label("b")
    (['a', 'c'], '(other)')
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.totals: dict[str, int] = {}
        self.selected: set[str] = set()

    def update(self, counts: Mapping[str, int]) -> list[str]:
        """Add ``counts`` (a key with 0 only asks for a place); returns the keys dropped."""
        totals = self.totals
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
        if self.limit is None:
            self.selected.update(counts)
            return []
        dropped: list[str] = []
        waiting = sorted(
            (k for k in counts if k not in self.selected), key=lambda k: totals[k], reverse=True
        )
        for key in waiting:
            if len(self.selected) < self.limit:
                self.selected.add(key)
                continue
            if not self.selected:
                break  # limit 0
            least = min(self.selected, key=lambda k: totals[k])
            if totals[key] <= 2 * totals[least]:
                break  # the keys still waiting are no busier
            self.selected.remove(least)
            self.selected.add(key)
            dropped.append(least)
        return dropped

    def label(self, key: str) -> str:
        """``key`` when it has series of its own, else :data:`OTHER`."""
        return key if key in self.selected else OTHER

    def discard(self, key: str) -> None:
        """Give up a key's place (its count stays, for when it asks again)."""
        self.selected.discard(key)

    def forget(self, key: str) -> None:
        """Drop a key altogether (its stream was deleted)."""
        self.totals.pop(key, None)
        self.selected.discard(key)


class BoundedStreams:
    """A ``stream`` label kept to the :class:`Busiest` ``limit`` streams, for metrics
    whose first label is ``stream``. Thread-safe.

    Counters and histograms of the other streams go under :data:`OTHER`; gauges of them
    are not kept (a level of one stream cannot be summed with another's). When a stream
    loses its place, every series made for it is removed.

    >>> m = Metrics("svc")
    >>> runs = m.counter("svc_runs_total", "Runs.", ["stream", "outcome"])
    >>> rows = m.gauge("svc_rows", "Rows.", ["stream"])
    >>> bounded = BoundedStreams(1)
    >>> bounded.seen("a")
    >>> bounded.child(runs, "a", "ok").inc()
    >>> bounded.seen("b")
    >>> bounded.child(runs, "b", "ok").inc()
    >>> bounded.gauge(rows, "b") is None
    True
    >>> b'svc_runs_total{outcome="ok",stream="(other)"} 1.0' in m.render()
    True
    """

    def __init__(self, limit: int | None) -> None:
        self._busiest = Busiest(limit)
        self._series: dict[str, set[tuple[Any, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def seen(self, stream: str, n: int = 1) -> None:
        """Count ``n`` units of work of ``stream`` (0: only ask for a place)."""
        with self._lock:
            for dropped in self._busiest.update({stream: n}):
                for metric, values in self._series.pop(dropped, set()):
                    metric.remove(*values)

    def child(self, metric: Any, stream: str, *labels: str) -> Any:
        """``metric.labels(stream, *labels)``, the stream bounded."""
        with self._lock:
            return self._child(metric, self._busiest.label(stream), labels)

    def gauge(self, metric: Any, stream: str, *labels: str) -> Any | None:
        """The gauge's child for ``stream``, or None when the stream has no series."""
        with self._lock:
            label = self._busiest.label(stream)
            return None if label == OTHER else self._child(metric, label, labels)

    def _child(self, metric: Any, label: str, labels: tuple[str, ...]) -> Any:
        if label != OTHER:
            self._series.setdefault(label, set()).add((metric, (label, *labels)))
        return metric.labels(label, *labels)
