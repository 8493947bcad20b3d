"""The validator as a faust agent (opt-in: ``DRIFTLINE_VALIDATOR_ENGINE=faust``);
the default is the batch loop of :mod:`services.validator.loop`, which keeps the same
guarantees with a plain consumer and producer.

The agent only decodes positions, calls the per-batch work of
:class:`~services.validator.batch.Validator` and sends; everything it decides lives in
the pure core.

Delivery is at-least-once and an offset is committed only after its output was
acknowledged by the broker: the agent takes events in batches with ``noack_take``
(which never acks on its own), sends every output, awaits every delivery future, and
only then acks the batch's events; faust commits acked offsets every
``commit_interval_s`` and when it stops or loses partitions (after waiting for
in-flight events). After a kill -9, everything since the last commit is redelivered
and re-judged; the duplicate index turns redeliveries into re-emissions with the same
event ids.

kafka-python serves the spec feed and the index rebuild (plain reads outside the
consumer group); faust (aiokafka) consumes and produces the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from schemas import Topics
from services.common.faust_app import make_app, raw_topic
from services.common.settings import DriftlineSettings
from services.validator.batch import Validator, crash
from services.validator.settings import ValidatorSettings

log = logging.getLogger(__name__)

# Batches judged and sent but not yet acknowledged by the broker, at most.
IN_FLIGHT_BATCHES: Final = 3


def build_app(
    settings: DriftlineSettings, vsettings: ValidatorSettings, validator: Validator
) -> Any:
    """The faust app: one agent on ``examples.raw`` and a timer applying new specs."""
    session = vsettings.session_timeout_s
    app = make_app(
        settings,
        vsettings.group(settings.topic_prefix),
        broker_commit_interval=vsettings.commit_interval_s,
        consumer_group_instance_id=vsettings.member(settings),  # static: fast restarts
        broker_session_timeout=session,
        broker_heartbeat_interval=min(3.0, session / 3),
        broker_max_poll_records=max(5000, vsettings.batch_size),
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=2 * 1024 * 1024,
    )
    source = raw_topic(app, Topics(settings.topic_prefix), "examples.raw")

    @app.agent(source, name="validate")
    async def validate(stream: Any) -> None:
        # Batches are judged and sent here; a second task waits for their deliveries and
        # acks their events in order, so judging batch k+1 overlaps batch k's broker round
        # trip. An event is acked only once every output of its batch is acknowledged.
        send = app.producer.send
        in_flight: asyncio.Queue[tuple[Sequence[Any], list[Any], float]] = asyncio.Queue(
            maxsize=IN_FLIGHT_BATCHES
        )
        acker = asyncio.ensure_future(_ack_in_order(stream, in_flight, validator))
        try:
            async for events in stream.noack_take(
                vsettings.batch_size, within=vsettings.batch_timeout_s
            ):
                started = time.perf_counter()
                try:
                    deliveries = await validator.handle(events, send)
                except Exception:
                    crash("judging a batch failed")
                await in_flight.put((events, deliveries, started))
        finally:
            acker.cancel()

    async def apply_specs() -> None:
        validator.apply_spec_updates()

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[Any] = args[0] if args else set()
        validator.revoked({tp.partition for tp in revoked if tp.topic == source.get_topic_name()})

    app.timer(0.5)(apply_specs)
    app.on_partitions_revoked.connect(on_revoked)

    return app


async def _ack_in_order(
    stream: Any,
    in_flight: asyncio.Queue[tuple[Sequence[Any], list[Any], float]],
    validator: Validator,
) -> None:
    """Await each batch's deliveries, then ack its events (faust commits acked offsets)."""
    while True:
        events, deliveries, started = await in_flight.get()
        try:
            await asyncio.gather(*deliveries)
            for event in events:  # only now: every output of the batch is acknowledged
                await stream.ack(event)
        except Exception:
            crash("an output of a batch was not acknowledged by the broker")
        validator.metrics.batch_seconds.observe(time.perf_counter() - started)
