"""The local development broker: a single-node KRaft Kafka on 127.0.0.1.

Used by ``driftline broker``, the integration tests, the benchmarks and the demo when
``DRIFTLINE_KAFKA_BOOTSTRAP`` is not set. ``config`` renders its files (pure), ``jars``
finds Java and fetches the pinned Kafka jars, ``process`` runs and supervises it.
"""

from services.localbroker.config import KAFKA_VERSION
from services.localbroker.jars import ensure_jars
from services.localbroker.process import BrokerStatus, LocalBroker

__all__ = ["KAFKA_VERSION", "BrokerStatus", "LocalBroker", "ensure_jars"]
