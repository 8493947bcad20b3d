"""The evaluator's lease: which one of its instances is active.

Every instance joins the consumer group ``group_id`` on the single-partition ``models``
topic with a *lease* consumer that never reads (its partition is paused). Kafka gives
that partition to exactly one member: that member is active; the others wait,
heartbeating, and one of them takes over when the active one stops (at once: it leaves
the group) or dies (within the session timeout). The cooperative sticky assignor keeps
the lease where it is when a standby joins, and does not even pause the active one.

The lease is coordination, not data: it stays on kafka-python whatever
``DRIFTLINE_KAFKA_CLIENT`` says.
"""

from __future__ import annotations

from collections.abc import Callable

from services.common.kafka_client import make_lease_consumer, subscribe_as_lease
from services.common.settings import DriftlineSettings


class Lease:
    """Membership of the lease group.

    ``on_revoked`` runs when the lease is handed over (checkpoint, then stand by),
    ``on_lost`` when this member was evicted (another may be active already); a gained
    lease is reported by :meth:`poll`, on the caller's thread.
    """

    def __init__(
        self,
        settings: DriftlineSettings,
        *,
        group_id: str,
        session_timeout_ms: int,
        on_revoked: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.on_revoked = on_revoked
        self.on_lost = on_lost
        self._gained = False
        self.consumer = make_lease_consumer(
            settings,
            group_id=group_id,
            client_id="driftline-evaluator-lease",
            session_timeout_ms=session_timeout_ms,
        )

    def join(self, topic: str) -> None:
        """Join the group on ``topic`` (the ``models`` topic: one partition)."""
        subscribe_as_lease(
            self.consumer, topic, gained=self._gain, revoked=self.on_revoked, lost=self.on_lost
        )

    def _gain(self) -> None:
        self._gained = True

    def poll(self, timeout_ms: int) -> bool:
        """Heartbeat; True when the lease was gained since the last poll and is held."""
        self.consumer.poll(timeout_ms=timeout_ms)
        gained, self._gained = self._gained, False
        return gained and bool(self.consumer.assignment())

    def close(self) -> None:
        """Leave the group: a standby takes over at once."""
        self.consumer.close()
