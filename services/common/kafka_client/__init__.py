"""kafka-python, and only here: every kafka-python import lives in this package.

Every other module asks this package for clients, so security settings, timeouts and the
fail-fast behaviour for an unreachable broker are decided in one place. One module per
job:

- :mod:`~services.common.kafka_client.connect`: producer, consumer and admin factories
  fed by settings, the readiness probe, leaving a group;
- :mod:`~services.common.kafka_client.topics`: topics made to match their specs;
- :mod:`~services.common.kafka_client.offsets`: a topic's bounds, reading a range back,
  assigning partitions, a key's partition;
- :mod:`~services.common.kafka_client.lease`: a group joined only to hold a lease;
- :mod:`~services.common.kafka_client.backend`: the kafka-python side of the backend
  seam (:mod:`services.common.kafka_types`).

The names below are the package's face: import them from ``services.common.kafka_client``.
"""

from services.common.kafka_client.backend import (
    JOIN_WAIT_MS,
    KafkaPythonBackend,
    KafkaPythonConsumer,
)
from services.common.kafka_client.connect import (
    PROBE_TOPIC,
    client_config,
    control_fetch,
    fetch_config,
    is_fenced,
    leave_group,
    make_admin,
    make_consumer,
    make_producer,
    wait_until_ready,
)
from services.common.kafka_client.lease import make_lease_consumer, subscribe_as_lease
from services.common.kafka_client.offsets import (
    assign_all,
    assign_at,
    canonical_partition,
    caught_up,
    end_offsets,
    offset_bounds,
    read_between,
    read_tails,
    subscribe_from_beginning,
)
from services.common.kafka_client.topics import TopicChange, ensure_topics

__all__ = [
    "JOIN_WAIT_MS",
    "PROBE_TOPIC",
    "KafkaPythonBackend",
    "KafkaPythonConsumer",
    "TopicChange",
    "assign_all",
    "assign_at",
    "canonical_partition",
    "caught_up",
    "client_config",
    "control_fetch",
    "end_offsets",
    "ensure_topics",
    "fetch_config",
    "is_fenced",
    "leave_group",
    "make_admin",
    "make_consumer",
    "make_lease_consumer",
    "make_producer",
    "offset_bounds",
    "read_between",
    "read_tails",
    "subscribe_as_lease",
    "subscribe_from_beginning",
    "wait_until_ready",
]
